"""`python -m bench`: runs the scenarios against our server and the baseline, writes results.json, prints a table."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from bench.report import machine, summarise, table
from bench.scenarios import MEMBER_KINDS, Params, progress, run_fanout, run_members

SCENARIOS = ("fanout", "join-storm", "idle")
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short run of each scenario (under a minute)")
    parser.add_argument("--runs", type=int, help="runs per scenario; each figure is the median (default 3, quick 1)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {', '.join(SCENARIOS)} (join-storm and idle share a server)")
    parser.add_argument("--idle-members", type=int, help="members in the idle scenario (default 10000, quick 1000)")
    parser.add_argument("--fanout-jams", type=int, help="jams of 7 in the fan-out scenario")
    parser.add_argument("--workers", type=int, help="load processes")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    return parser.parse_args(argv)


def _clean(value: Any) -> Any:
    """NaN and infinities become null, so results.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark."""
    args = parse_args(argv)
    params = Params.default(args.quick)
    overrides = {"runs": args.runs, "idle_members": args.idle_members, "fanout_jams": args.fanout_jams,
                 "workers": args.workers}
    params = dataclasses.replace(params, **{k: v for k, v in overrides.items() if v is not None})
    chosen = {name.strip() for name in args.scenarios.split(",") if name.strip()}
    unknown = chosen - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    info = machine()
    runs: list[dict[str, Any]] = []
    for index in range(params.runs):
        run: dict[str, Any] = {}
        if "fanout" in chosen:
            progress(f"run {index + 1}/{params.runs}: fan-out")
            run["fanout"] = run_fanout(params)
        if chosen & {"join-storm", "idle"}:
            progress(f"run {index + 1}/{params.runs}: join storm and idle members")
            # Alternate which server goes first, so a slow spell on the machine does not always hit the same one.
            order = MEMBER_KINDS if index % 2 == 0 else tuple(reversed(MEMBER_KINDS))
            members = {kind: run_members(params, kind) for kind in order}
            run["members"] = {kind: members[kind] for kind in MEMBER_KINDS}
        runs.append(run)
        progress(f"run {index + 1} done at {time.monotonic() - started:.0f} s")
    info["load_average_at_end"] = list(os.getloadavg())
    results = {
        "machine": info,
        "parameters": {**params.as_dict(), "scenarios": sorted(chosen)},
        "summary": summarise(runs),
        "runs": runs,
        "seconds": time.monotonic() - started,
        "output": str(args.output),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(_clean(results), indent=1) + "\n")
    print(table(results), flush=True)
