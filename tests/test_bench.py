"""The benchmark harness runs end to end in its quick form and reports every figure it promises."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("ours", "baseline")
FANOUT_FIGURES = ("delivered_msgs_per_s", "cpu_us_per_msg", "cpu_us_per_event", "latency_p50_ms", "latency_p99_ms")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One `python -m bench --quick` in a subprocess: its results.json and its stdout."""
    output = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(output.read_text()), done.stdout


@pytest.mark.timeout(300)
def test_quick_benchmark_describes_the_machine_and_parameters(quick_run: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_run
    machine = results["machine"]
    for key in ("cpu_model", "cores", "kernel", "python", "grpcio", "git_commit"):
        assert machine[key], key
    params = results["parameters"]
    assert params["quick"] is True and params["runs"] == 1
    assert params["storm_members"] == 1000 and params["streams_per_channel"] == 100


@pytest.mark.timeout(300)
def test_quick_benchmark_measures_fanout_of_both_servers_at_equal_rates(quick_run: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_run
    fanout = results["summary"]["fanout"]
    # Ours sends a presence diff to all seven members and the LoopEvent to six; the baseline only the six LoopEvents.
    assert fanout["msgs_per_event"]["ours"] == pytest.approx(13, abs=0.5)
    assert fanout["msgs_per_event"]["baseline"] == pytest.approx(6, abs=0.5)
    assert set(fanout["compare"]) == {f"{p}% of baseline saturation" for p in (25, 50, 75)}
    for point in fanout["compare"].values():
        assert _positive(point["target_msgs_per_s"])
        for kind in KINDS:
            for figure in FANOUT_FIGURES:
                assert _positive(point[kind][figure]), (kind, figure)
    for key in (*fanout["compare"], "each at own saturation"):
        assert _positive(fanout["ratios"][key]["cpu_us_per_msg"]), key
    for kind in KINDS:
        assert _positive(fanout["saturation"][kind]["delivered_msgs_per_s"])
    assert _positive(fanout["ours_at_half_own_saturation"]["latency_p99_ms"])
    sweeps = results["runs"][0]["fanout"]["sweeps"]
    for kind in KINDS:
        assert len(sweeps[kind]) >= 2
        assert all(level["latency_samples"] > 0 for level in sweeps[kind])


@pytest.mark.timeout(300)
def test_quick_join_storm_places_1000_members_in_143_jams_on_both_servers(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    results, _ = quick_run
    storm = results["summary"]["join_storm"]
    for kind in KINDS:
        assert storm[kind]["members"] == 1000
        assert storm[kind]["jam_counts"] == [143], kind
        for figure in ("joins_per_s", "latency_p50_ms", "latency_p99_ms"):
            assert _positive(storm[kind][figure]), (kind, figure)
    assert results["runs"][0]["members"]["ours"]["join_storm"]["errors"] == []


@pytest.mark.timeout(300)
def test_quick_idle_scenario_reports_memory_and_cpu_per_member(quick_run: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_run
    idle = results["summary"]["idle"]
    for kind in KINDS:
        assert idle[kind]["members"] == 1000
        assert _positive(idle[kind]["rss_bytes_per_member"])
        assert idle[kind]["idle_cpu_percent"] >= 0
    assert _positive(idle["rss_per_member_ratio"])


@pytest.mark.timeout(300)
def test_quick_benchmark_prints_a_table_with_every_target(quick_run: tuple[dict[str, Any], str]) -> None:
    results, stdout = quick_run
    assert len(results["summary"]["targets"]) == 4
    for section in ("FAN-OUT", "JOIN STORM", "IDLE", "TARGETS"):
        assert section in stdout
    for name in results["summary"]["targets"]:
        assert name in stdout
