"""The card (``card.md``) of a built zoo entry: what it is, how it was trained, how good it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffrepro.core.zoo.registry import ZooEntry

CARD = "card.md"


def write_card(entry: ZooEntry, folder: Path, manifest: dict[str, Any]) -> Path:
    facts = manifest.get("facts", {})
    lines = [
        f"# {entry.name}",
        "",
        entry.summary,
        "",
        f"- cache key: `{manifest['key']}` (built {manifest['built_at']}, "
        f"torch {manifest['torch']})",
        f"- data: `{entry.data_version or '-'}`",
    ]
    if entry.requires:
        lines.append(f"- builds on: {', '.join(entry.requires)}")
    lines += ["", "## Facts measured at build time", "", "| fact | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(facts.items())]
    quality = manifest.get("quality")
    lines += ["", "## Measured quality (`nox -s bench`)", ""]
    if quality:
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(quality.items())]
    else:
        lines.append(
            "Not measured yet: run `uv run nox -s bench` (shared/benchmarks/bench_zoo.py)."
        )
    lines += [
        "",
        "## Config and recipe",
        "",
        "```json",
        json.dumps({"config": manifest["config"], "recipe": manifest["recipe"]}, indent=2),
        "```",
        "",
    ]
    if entry.card:
        lines += [entry.card.strip(), ""]
    path = folder / CARD
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")
