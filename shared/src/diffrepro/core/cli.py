"""The ``diffrepro`` command and the argument conventions every paper command shares.

``diffrepro list``                     the installed paper packages
``diffrepro cite SLUG``                a paper's BibTeX
``diffrepro reproduce SLUG... | --all`` run the demos and write ``runs/REPORT.md``
``diffrepro zoo list | build | path | card``  the zoo's base models (:mod:`diffrepro.core.zoo`)

Paper packages build their own command with :func:`paper_parser` and :func:`add_common_args`
and run it with :func:`run`, which turns bad input into one clear error line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from diffrepro.core import papers
from diffrepro.core.report import DemoResult, markdown_table

RUNS_DIR = Path("runs")


# --- shared conventions for paper commands -------------------------------------------------


def add_common_args(parser: argparse.ArgumentParser, *, preset: str = "demo") -> None:
    """--preset, --set key=value, --out, --device, --seed and --checkpoint."""
    parser.add_argument("--preset", default=preset, help=f"paper | demo | tiny (default {preset})")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field (repeatable, e.g. --set steps=100)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/...)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="model weights to load")


def paper_parser(paper: papers.Paper) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A paper command's parser with its ``demo`` and ``cite`` subcommands already wired."""
    parser = argparse.ArgumentParser(
        prog=paper.slug.replace("_", "-"), description=f"{paper.title} (diffrepro reproduction)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="CPU-scale reproduction on embedded data")
    demo.add_argument("--out", type=Path, default=RUNS_DIR / paper.slug)
    demo.add_argument("--device", default="cpu")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    demo.set_defaults(func=lambda args: _run_demo(paper, args))
    cite = commands.add_parser("cite", help="print the paper's BibTeX")
    cite.set_defaults(func=lambda args: print(paper.bibtex.strip()))
    return parser, commands


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and call ``args.func(args)``; bad input becomes one error line (exit 2).

    Set ``DIFFREPRO_DEBUG=1`` to see the full traceback instead.
    """
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, OSError) as err:
        if os.environ.get("DIFFREPRO_DEBUG"):
            raise
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


def _run_demo(paper: papers.Paper, args: argparse.Namespace) -> None:
    result = paper.run_demo(args.out, device=args.device, seed=args.seed, quick=args.quick)
    print(markdown_table(result.headline))
    print(f"report: {result.report}")


# --- the umbrella command ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffrepro", description="Reproductions of diffusion and masked-generation papers."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list installed paper packages").set_defaults(func=_list)
    cite = commands.add_parser("cite", help="print a paper's BibTeX")
    cite.add_argument("slug")
    cite.set_defaults(func=lambda args: print(papers.get(args.slug).bibtex.strip()))
    reproduce = commands.add_parser("reproduce", help="run demos and write runs/REPORT.md")
    reproduce.add_argument("slugs", nargs="*", metavar="SLUG")
    reproduce.add_argument("--all", action="store_true", help="every installed paper")
    reproduce.add_argument("--out", type=Path, default=RUNS_DIR)
    reproduce.add_argument("--device", default="cpu")
    reproduce.add_argument("--seed", type=int, default=0)
    reproduce.add_argument("--quick", action="store_true", help="seconds-long smoke runs")
    reproduce.set_defaults(func=_reproduce)
    from diffrepro.core.zoo.cli import add_zoo_command

    add_zoo_command(commands)
    return parser


def _list(args: argparse.Namespace) -> None:
    found = papers.discover()
    if not found:
        print("no paper packages installed (uv sync --all-packages installs them all)")
        return
    rows = [(p.slug, p.arxiv or "-", p.status, p.title) for p in found.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])


def _reproduce(args: argparse.Namespace) -> int:
    if args.all == bool(args.slugs):
        raise ValueError("name the papers to reproduce, or pass --all (not both)")
    chosen = list(papers.discover()) if args.all else args.slugs
    selected = [papers.get(slug) for slug in chosen]
    results: dict[str, DemoResult | str] = {}
    for paper in selected:
        print(f"== {paper.slug}: {paper.title}", flush=True)
        start = time.perf_counter()
        try:
            results[paper.slug] = paper.run_demo(
                args.out / paper.slug, device=args.device, seed=args.seed, quick=args.quick
            )
        except Exception as err:  # one failing demo must not hide the others' results
            results[paper.slug] = f"failed: {type(err).__name__}: {err}"
        print(f"   {time.perf_counter() - start:.0f} s", flush=True)
    report = write_summary(args.out, {p.slug: p for p in selected}, results)
    print(f"summary: {report}")
    return 0 if all(isinstance(r, DemoResult) for r in results.values()) else 1


def write_summary(
    out_dir: Path, selected: dict[str, papers.Paper], results: dict[str, DemoResult | str]
) -> Path:
    """``REPORT.md``: every reproduction's headline figures beside the paper's."""
    lines = ["# diffrepro: reproductions at a glance", ""]
    lines += [
        "Each section puts the paper's headline figures beside ours. Our runs are CPU-scale",
        "demos on embedded data unless the linked report says otherwise: read each report's",
        "statement of scale before comparing numbers.",
        "",
    ]
    for slug, result in results.items():
        paper = selected[slug]
        lines += [f"## {paper.title}", ""]
        if isinstance(result, DemoResult):
            link = os.path.relpath(result.report, out_dir)
            lines += [markdown_table(result.headline), "", f"Full report: [{link}]({link})", ""]
        else:
            lines += [f"The demo {result}", ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    sys.exit(main())
