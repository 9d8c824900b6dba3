"""The benchmark's report: the machine it ran on, medians over runs, targets, and the stdout table."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.processes import OURS_FLAGS, ROOT
from bench.scenarios import KINDS, MEMBER_KINDS, median_of

FIGURES = ("delivered_msgs_per_s", "cpu_us_per_msg", "cpu_us_per_event", "latency_p50_ms", "latency_p99_ms",
           "server_cpu_percent", "server_system_cpu_percent", "load_cpu_percent", "offered_events_per_s",
           "sent_events_per_s", "target_msgs_per_s")
KB = 1000


def machine() -> dict[str, Any]:
    """What the benchmark ran on."""
    model = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=10)
            return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
        "load_average_at_start": list(os.getloadavg()),
    }


def _medians(levels: list[dict[str, Any]]) -> dict[str, float]:
    return {figure: median_of([level.get(figure, math.nan) for level in levels]) for figure in FIGURES}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over runs of every headline figure; ratios are taken inside each run, then their median."""
    summary: dict[str, Any] = {}
    fanouts = [run["fanout"] for run in runs if "fanout" in run]
    if fanouts:
        compare_keys = list(fanouts[0]["compare"])
        summary["fanout"] = {
            "saturation": {kind: _medians([f["saturation"][kind] for f in fanouts]) for kind in KINDS},
            "msgs_per_event": {kind: median_of([f["sweeps"][kind][0]["msgs_per_event"] for f in fanouts])
                               for kind in KINDS},
            "compare": {
                key: {
                    "target_msgs_per_s": median_of([f["compare"][key]["target_msgs_per_s"] for f in fanouts]),
                    **{kind: {**_medians([f["compare"][key][kind] for f in fanouts]),
                              "reached_in_runs": [f["compare"][key][kind]["reached"] for f in fanouts]}
                       for kind in KINDS},
                }
                for key in compare_keys
            },
            "ratios": {
                key: {figure: median_of([f["ratios"][key][figure] for f in fanouts])
                      for figure in fanouts[0]["ratios"][key]}
                for key in fanouts[0]["ratios"]
            },
            "ours_at_half_own_saturation": _medians([f["ours_at_half_own_saturation"] for f in fanouts]),
        }
    members = [run["members"] for run in runs if "members" in run]
    if members:
        summary["join_storm"] = {
            kind: {
                **{figure: median_of([m[kind]["join_storm"][figure] for m in members])
                   for figure in ("joins_per_s", "latency_p50_ms", "latency_p99_ms", "latency_max_ms")},
                "jam_counts": [m[kind]["join_storm"]["jam_count"] for m in members],
                "members": members[0][kind]["join_storm"]["members"],
            }
            for kind in MEMBER_KINDS if kind in members[0]
        }
        summary["idle"] = {
            kind: {
                **{figure: median_of([m[kind]["idle"][figure] for m in members])
                   for figure in ("members", "rss_bytes_per_member", "idle_cpu_percent", "rss_before_bytes",
                                  "rss_after_bytes")},
                "streams_per_channel": members[0][kind]["idle"]["streams_per_channel"],
            }
            for kind in MEMBER_KINDS if kind in members[0]
        }
        summary["idle"]["rss_per_member_ratio"] = median_of(
            [m["ours"]["idle"]["rss_bytes_per_member"] / m["baseline"]["idle"]["rss_bytes_per_member"]
             for m in members]
        )
    summary["targets"] = targets(summary)
    return summary


def targets(summary: dict[str, Any]) -> dict[str, Any]:
    """The product's targets, each with the measured value and whether it is met."""
    result: dict[str, Any] = {}
    fanout = summary.get("fanout")
    if fanout:
        worst = max(
            (ratio["cpu_us_per_msg"] for key, ratio in fanout["ratios"].items() if key != "each at own saturation"),
            default=float("nan"),
        )
        result["cpu_per_msg_ratio_at_equal_rates<=1.0"] = {"measured_worst": worst, "met": worst <= 1.0}
        p99 = fanout["ours_at_half_own_saturation"]["latency_p99_ms"]
        result["p99_ms_at_half_saturation<=10"] = {"measured": p99, "met": p99 <= 10.0}
    idle = summary.get("idle")
    if idle:
        ours = idle["ours"]
        result["members>=10000_at<=20KB_each"] = {
            "members": ours["members"],
            "bytes_per_member": ours["rss_bytes_per_member"],
            # A run with fewer members (--quick) cannot tell.
            "met": None if ours["members"] < 10000 else ours["rss_bytes_per_member"] <= 20 * KB,
        }
    storm = summary.get("join_storm")
    if storm:
        ours = storm["ours"]
        result["join_storm_1000_p99<250ms_and_143_jams"] = {
            "p99_ms": ours["latency_p99_ms"],
            "jam_counts": ours["jam_counts"],
            "met": ours["members"] == 1000
            and ours["latency_p99_ms"] < 250
            and all(count == 143 for count in ours["jam_counts"]),
        }
    return result


def _f(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _saturation(level: dict[str, Any]) -> str:
    return (f"{_f(level['delivered_msgs_per_s'], 0)} ({_f(level['sent_events_per_s'], 0)} loop events/s,"
            f" server CPU {_f(level['server_cpu_percent'], 0)}%"
            f" of which system {_f(level['server_system_cpu_percent'], 0)}%,"
            f" load CPU {_f(level['load_cpu_percent'], 0)}%)")


def table(results: dict[str, Any]) -> str:
    """The human-readable report."""
    params, info, summary = results["parameters"], results["machine"], results["summary"]
    lines = [
        (f"jamservice benchmark: {params['runs']} run(s), figures are medians over runs; ratios are ours/baseline"
        " taken inside each run, then the median."),
        (f"machine: {info['cpu_model']}, {info['cores']} cores, Linux {info['kernel']}, Python {info['python']},"
        f" grpcio {info['grpcio']}, commit {info['git_commit'][:12]}{' (dirty)' if info['git_dirty'] else ''}"),
        (f"load average at start {', '.join(f'{v:.2f}' for v in info['load_average_at_start'])}: the machine is shared,"
        " so throughput and latency are noisy."),
        f"load: {params['workers']} load processes (asyncio, grpc.aio); the servers run as their own processes.",
        (f"our server runs with {' '.join(OURS_FLAGS)}: the per-stream loop-event rate limit and the slow-consumer"
        " outbox are raised so the fan-out measures throughput."),
    ]
    fanout = summary.get("fanout")
    if fanout:
        lines += [
            "",
            (f"FAN-OUT: {params['fanout_jams']} jams x 7 members ({params['fanout_jams'] * 7} streams over"
            f" {params['fanout_channels']} channels per server); each member alternates PLAYED/STOPPED at a fixed rate;"
            f" window {params['window_s']} s after {params['warmup_s']} s warm-up."),
            "latency: the sender's write to each receiver's read of the LoopEvent (same process, same clock).",
            (f"messages delivered per loop event: ours {_f(fanout['msgs_per_event']['ours'], 2)}"
            f" (presence diff to all 7 + LoopEvent to 6), baseline {_f(fanout['msgs_per_event']['baseline'], 2)}."),
            "",
            (f"{'point':30} {'msg/s':>9} {'reached':>7} {'ours us/msg':>11} {'base us/msg':>11} {'ratio':>6}"
            f" {'ours us/ev':>10} {'base us/ev':>10} {'ratio':>6} {'ours p50/p99 ms':>16} {'base p50/p99 ms':>16}"),
        ]
        points = {**{key: (point["ours"], point["baseline"], point["target_msgs_per_s"])
                     for key, point in fanout["compare"].items()},
                  "each at own saturation": (fanout["saturation"]["ours"], fanout["saturation"]["baseline"], None)}
        for key, (ours, base, target) in points.items():
            ratio = fanout["ratios"][key]
            rate = _f(target, 0) if target is not None else "own"
            reached = "/".join(
                "yes" if all(level.get("reached_in_runs", [True])) else "NO" for level in (ours, base)
            )
            lines.append(
                f"{key:30} {rate:>9} {reached:>7} {_f(ours['cpu_us_per_msg']):>11} {_f(base['cpu_us_per_msg']):>11}"
                f" {_f(ratio['cpu_us_per_msg'], 2):>6} {_f(ours['cpu_us_per_event']):>10}"
                f" {_f(base['cpu_us_per_event']):>10} {_f(ratio['cpu_us_per_event'], 2):>6}"
                f" {_f(ours['latency_p50_ms'], 2) + ' / ' + _f(ours['latency_p99_ms'], 2):>16}"
                f" {_f(base['latency_p50_ms'], 2) + ' / ' + _f(base['latency_p99_ms'], 2):>16}"
            )
        sat = fanout["saturation"]
        half = fanout["ours_at_half_own_saturation"]
        lines += [
            "",
            f"saturation delivered msg/s: ours {_saturation(sat['ours'])}; baseline {_saturation(sat['baseline'])}",
            (f"ours at 50% of its own saturation ({_f(half['target_msgs_per_s'], 0)} msg/s): delivered"
            f" {_f(half['delivered_msgs_per_s'], 0)} msg/s, {_f(half['cpu_us_per_msg'])} us/msg,"
            f" p50 {_f(half['latency_p50_ms'], 2)} ms, p99 {_f(half['latency_p99_ms'], 2)} ms"),
            "",
            "reached: whether ours/baseline delivered at least 90% of the target rate in every run.",
            "",
            ("sweeps (each run; offered loop events/s -> delivered msg/s, server us/msg, p99 ms; 'again:' re-measures"
            " a level that looked saturated, which counts only if it repeats):"),
        ]
        for index, run in enumerate(results["runs"]):
            if "fanout" not in run:
                continue
            for kind in KINDS:
                steps = "  ".join(
                    f"{'again:' if lv['label'].endswith('again') else ''}{_f(lv['offered_events_per_s'], 0)}"
                    f"->{_f(lv['delivered_msgs_per_s'], 0)} {_f(lv['cpu_us_per_msg'])}us {_f(lv['latency_p99_ms'])}ms"
                    for lv in run["fanout"]["sweeps"][kind]
                )
                lines.append(f"  run {index + 1} {kind:8} {steps}")
    storm = summary.get("join_storm")
    if storm:
        storm_kinds = [kind for kind in MEMBER_KINDS if kind in storm]
        lines += ["", (f"JOIN STORM: {storm['ours']['members']} auto-placed joins at once on an empty server"
                  " (Join written -> PresenceState read)"),
                  f"{'server':10} {'joins/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  jams per run"]
        for kind in storm_kinds:
            s = storm[kind]
            lines.append(f"{kind:10} {_f(s['joins_per_s'], 0):>9} {_f(s['latency_p50_ms']):>8}"
                         f" {_f(s['latency_p99_ms']):>8} {_f(s['latency_max_ms']):>8}  {s['jam_counts']}")
    idle = summary.get("idle")
    if idle:
        idle_kinds = [kind for kind in MEMBER_KINDS if kind in idle]
        lines += ["", (f"IDLE: joined members doing nothing, {idle['ours']['streams_per_channel']} streams per channel"
                  " (the join-storm members are among them); RSS per member = (RSS with members - RSS before)/members;"
                  f" idle CPU over {params['idle_window_s']} s (psutil, 10 ms tick resolution)"),
                  (f"{'server':10} {'members':>8} {'KB/member':>10} {'RSS before MB':>14} {'RSS after MB':>13}"
                  f" {'idle CPU %':>10}")]
        for kind in idle_kinds:
            s = idle[kind]
            lines.append(f"{kind:10} {_f(s['members'], 0):>8} {_f(s['rss_bytes_per_member'] / KB):>10}"
                         f" {_f(s['rss_before_bytes'] / 1e6):>14} {_f(s['rss_after_bytes'] / 1e6):>13}"
                         f" {_f(s['idle_cpu_percent'], 2):>10}")
        lines.append(f"RSS per member ours/baseline: {_f(idle['rss_per_member_ratio'], 2)}  (KB = 1,000 bytes)")
        if "floor" in idle:
            lines.append("floor: a grpc.aio server that only holds each stream (one coroutine, no queue): grpcio's own cost")
    lines += ["", "TARGETS:"]
    for name, target in summary["targets"].items():
        detail = ", ".join(f"{k} {_f(v, 2) if isinstance(v, float) else v}" for k, v in target.items() if k != "met")
        verdict = "N/A    " if target["met"] is None else "MET    " if target["met"] else "NOT MET"
        lines.append(f"  {verdict} {name}: {detail}")
    lines.append(f"\ntook {results['seconds']:.0f} s; every figure of every run is in {results['output']}")
    return "\n".join(lines)
