"""The paper registry: every installed paper package announces itself here.

A package registers one :class:`Paper` object in the entry-point group ``diffrepro.papers``::

    [project.entry-points."diffrepro.papers"]
    adir = "diffrepro.adir.paper:PAPER"

The entry point's name must equal ``Paper.slug``. The module it points to must import cheaply:
``Paper.demo`` imports the heavy parts of the package only when it runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from diffrepro.core.report import DemoResult

ENTRY_POINT_GROUP = "diffrepro.papers"

DemoFn = Callable[..., DemoResult]
"""``demo(out_dir: Path, *, device="cpu", seed=0, quick=False) -> DemoResult``."""


@dataclass(frozen=True)
class Paper:
    """What ``diffrepro list / cite / reproduce`` need to know about a paper package."""

    slug: str
    title: str
    arxiv: str | None
    bibtex: str
    status: str
    demo: DemoFn
    summary: str = ""

    def run_demo(self, out_dir: Path, **kwargs) -> DemoResult:
        return self.demo(Path(out_dir), **kwargs)


def discover() -> dict[str, Paper]:
    """All registered papers, by slug, sorted by slug.

    A package whose entry point fails to import is skipped with a warning naming it, so one
    broken install does not hide the others.
    """
    papers = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            paper = ep.load()
        except Exception as err:
            warnings.warn(f"paper package {ep.name!r} failed to load: {err}", stacklevel=2)
            continue
        if not isinstance(paper, Paper):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a diffrepro Paper")
        if paper.slug != ep.name:
            raise ValueError(f"entry point {ep.name!r} registers a paper with slug {paper.slug!r}")
        papers[paper.slug] = paper
    return dict(sorted(papers.items()))


def get(slug: str) -> Paper:
    """The paper registered under ``slug``; a clear error names the installed ones."""
    papers = discover()
    if slug not in papers:
        known = ", ".join(papers) or "none"
        raise ValueError(f"no paper package {slug!r} is installed (installed: {known})")
    return papers[slug]
