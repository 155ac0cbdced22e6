"""The default comparisons, timed end to end (``nox -s bench``; issue target: the default
editing comparison on the zoo within 15 minutes on 2 cores).

    python shared/benchmarks/bench_compare.py [--kinds editing restoration]

Each kind runs ``diffrepro compare <kind>`` with its defaults into a fresh folder (no cached
cells), records the total wall time against the 15-minute target and, per method, its time per
edit / image and its ratio to the reference method (DDIM inversion + regeneration for editing,
RePaint for restoration) from the run's own ``metrics.json``. Results:
``runs/bench/compare.{json,md}``; the run folders are kept under ``runs/bench/compare_<kind>/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from diffrepro.core.benchmark import BENCH_DIR, write_results
from diffrepro.core.cli import main as cli

TARGET_S = 15 * 60
KINDS = ("editing", "restoration")


def run_kind(kind: str) -> list[dict]:
    out = BENCH_DIR / f"compare_{kind}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh folder: no cell is read from a cache
    start = time.perf_counter()
    code = cli(["compare", kind, "--out", str(out)])
    total = time.perf_counter() - start
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    rows = [{"kind": kind, "method": "(all)", "seconds": total, "target_s": TARGET_S,
             "within_target": total <= TARGET_S, "exit_code": code}]  # fmt: skip
    for method, entry in summary.items():
        seconds = entry["seconds"]
        rows.append({
            "kind": kind, "method": method,
            "seconds": None if seconds is None else seconds["mean"],
            "time_ratio": entry["time_ratio"], "failed": len(entry["failed"]),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args()
    rows = [row for kind in args.kinds for row in run_kind(kind)]
    notes = (
        "`(all)`: the whole default comparison's wall time; per method: mean seconds per "
        "edit / image and the ratio to the reference (ddim / repaint) in the same run."
    )
    print(write_results("compare", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
