"""What a demo hands back: headline figures beside the paper's, and the files it wrote.

A paper's ``demo`` returns a :class:`DemoResult`; ``diffrepro reproduce`` gathers them into one
table (``runs/REPORT.md``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Headline:
    """One line of a "paper vs ours" table."""

    metric: str
    paper: str
    ours: str
    note: str = ""


@dataclass(frozen=True)
class DemoResult:
    """The report a demo wrote, its headline figures and its full metrics."""

    report: Path
    headline: tuple[Headline, ...]
    metrics: Mapping[str, Any] = field(default_factory=dict)


def markdown_table(headlines: Iterable[Headline]) -> str:
    """A Markdown table with the columns metric | paper | ours | note (``|`` in cells escaped)."""
    lines = ["| metric | paper | ours | note |", "|---|---|---|---|"]
    for h in headlines:
        cells = (_escape(c) for c in (h.metric, h.paper, h.ours, h.note))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _escape(cell: str) -> str:
    return str(cell).replace("|", "\\|")


def write_metrics(out_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics.json`` (sorted keys, floats as JSON numbers) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"metrics value of type {type(value).__name__} is not JSON serialisable")
