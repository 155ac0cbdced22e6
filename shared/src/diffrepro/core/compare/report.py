"""Summaries of the cells: mean +- sd over seeds per method, ``table.md``, ``metrics.json``,
``grid.png`` (rows = tasks, columns = source then methods, first seed) and ``scatter.png``.

For each measure a method's value for one seed is its mean over the tasks where the measure
applies; the table shows the mean and the (sample) standard deviation of that over seeds.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from diffrepro.core.compare.figure import image_grid, scatter
from diffrepro.core.report import write_metrics

MEASURES = (
    ("recon_mse", "recon MSE"),
    ("success", "edit success (top-5)"),
    ("target_prob", "target prob"),
    ("dist_in", "dist in mask"),
    ("dist_out", "dist outside"),
    ("structure", "structure"),
    ("judge_dist", "judge dist"),
    ("seconds", "s / edit"),
    ("unet_evals", "UNet evals"),
    ("peak_mib", "peak MiB"),
)
REFERENCE = "ddim"  # times are also given as a ratio to DDIM inversion + regeneration


def summarise(
    rows: list[dict],
    methods: list[str],
    seeds: list[int],
    measures: tuple[tuple[str, str], ...] = MEASURES,
    reference: str = REFERENCE,
) -> dict:
    """{method: {measure: {"mean", "sd", "n"} | None, "failed": [...], "time_ratio": ...}};
    ``time_ratio`` is a method's time over the ``reference`` method's."""
    summary = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        ok = [r for r in mine if r["status"] == "ok"]
        entry: dict = {m: _over_seeds(ok, m, seeds) for m, _ in measures}
        entry["cells"] = len(mine)
        entry["failed"] = [
            {"task": r["task"], "seed": r["seed"], "error": r["error"]}
            for r in mine
            if r["status"] != "ok"
        ]
        summary[method] = entry
    ref = summary.get(reference, {}).get("seconds")
    for entry in summary.values():
        mine = entry["seconds"]
        ok = ref and mine and ref["mean"] > 0
        entry["time_ratio"] = mine["mean"] / ref["mean"] if ok else None
    return summary


def _over_seeds(rows: list[dict], measure: str, seeds: list[int]) -> dict | None:
    per_seed = []
    for seed in seeds:
        values = [r[measure] for r in rows if r["seed"] == seed and r.get(measure) is not None]
        if values:
            per_seed.append(sum(values) / len(values))
    if not per_seed:
        return None
    for value in per_seed:
        if not math.isfinite(value):
            raise FloatingPointError(f"a non-finite {measure}: {value}")
    sd = statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
    return {"mean": statistics.fmean(per_seed), "sd": sd, "n": len(per_seed)}


def table(
    summary: dict,
    titles: dict[str, str],
    measures: tuple[tuple[str, str], ...] = MEASURES,
    reference: str = REFERENCE,
) -> str:
    header = ["method"] + [label for _, label in measures]
    header += [f"x {reference} time", "failed cells"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, entry in summary.items():
        cells = [f"{titles.get(method, method)} (`{method}`)"]
        cells += [_cell(entry[m]) for m, _ in measures]
        ratio = entry["time_ratio"]
        cells.append("-" if ratio is None else f"{ratio:.2f}")
        cells.append(f"{len(entry['failed'])}/{entry['cells']}")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _cell(stat: dict | None) -> str:
    if stat is None:
        return "-"
    return f"{_num(stat['mean'])} ± {_num(stat['sd'])}"


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def write_report(
    out_dir: Path,
    rows: list[dict],
    methods: list[str],
    titles: dict[str, str],
    tasks: list,
    seeds: list[int],
    setup: dict,
    skipped: list[str],
) -> dict:
    """Write table.md, metrics.json, grid.png and scatter.png; return the summary."""
    summary = summarise(rows, methods, seeds)
    first = seeds[0]
    grid_rows = []
    for task in tasks:
        row = [task.image[0].numpy()]
        for method in methods:
            cell = find_row(rows, method, task.name, first)
            ok = cell is not None and cell["status"] == "ok"
            row.append(cell["images"]["edited"] if ok else None)
        grid_rows.append(row)
    image_grid(grid_rows, ["source", *methods], out_dir / "grid.png")
    points = {
        m: (e["dist_out"]["mean"], e["target_prob"]["mean"])
        for m, e in summary.items()
        if e["dist_out"] and e["target_prob"]
    }
    scatter(
        points,
        out_dir / "scatter.png",
        xlabel="fidelity: distance outside the mask (lower = more faithful)",
        ylabel="alignment: judge prob of target",
    )
    text = [
        "# diffrepro compare editing",
        "",
        f"Base: `{setup['base']}`, {setup['steps']} DDIM steps, seeds {seeds}, "
        f"{len(tasks)} tasks, device {setup['device']}. Mean ± sd over seeds of each "
        "method's mean over tasks. Judge-space numbers come from the core emoji judge: they "
        "are not CLIP or LPIPS scores (see docs/compare.md).",
        "",
        table(summary, titles),
        "",
        f"Grid (`grid.png`): rows = tasks, columns = source, {', '.join(methods)} (seed {first}).",
        "Scatter (`scatter.png`): distance outside the mask against the judge's target "
        "probability.",
        "",
        "Tasks: " + "; ".join(f"{t.name} (`{t.source}` -> `{t.target}`)" for t in tasks),
    ]
    write_outputs(out_dir, text, summary, rows, setup, skipped)
    return summary


def write_outputs(
    out_dir: Path, text: list[str], summary: dict, rows: list[dict], setup: dict, skipped: list
) -> None:
    """``table.md`` (``text``, then the skipped packages and failed cells) and ``metrics.json``."""
    failures = [f"- `{m}` {f['task']} seed {f['seed']}: {f['error']}"
                for m, e in summary.items() for f in e["failed"]]  # fmt: skip
    if skipped:
        text = [*text, "", "Not installed (skipped): " + ", ".join(skipped)]
    if failures:
        text = [*text, "", "Failed cells:", *failures]
    (out_dir / "table.md").write_text("\n".join(text) + "\n")
    cells = [{k: v for k, v in r.items() if k != "images"} for r in rows]
    write_metrics(out_dir, {"setup": setup, "summary": summary, "skipped": skipped, "cells": cells})


def find_row(rows: list[dict], method: str, task: str, seed: int) -> dict | None:
    for row in rows:
        if (row["method"], row["task"], row["seed"]) == (method, task, seed):
            return row
    return None
