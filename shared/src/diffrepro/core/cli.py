"""The ``diffrepro`` command and the argument conventions every paper command shares.

``diffrepro list``                     the installed paper packages
``diffrepro cite SLUG``                a paper's BibTeX
``diffrepro reproduce SLUG... | --all`` run the demos and write ``runs/REPORT.md``
``diffrepro zoo list | build | path | card``  the zoo's base models (:mod:`diffrepro.core.zoo`)
``diffrepro compare editing``          installed methods side by side (``core.compare``)

Paper packages build their own command with :func:`paper_parser` and :func:`add_common_args`
and run it with :func:`run`, which turns bad input into one clear error line.

Error convention (every command): a user error (a ``ValueError``, ``OSError`` or
``FloatingPointError`` raised where the input enters, or an argparse error) prints exactly one
line ``PROG: error: ...`` naming the input, and exits with 2. Any other exception is a bug: one
line says it is an internal error and that ``DIFFREPRO_DEBUG=1`` shows the traceback (exit 1).
The argument types below (:func:`positive_int`, :func:`seed_int`, :func:`device_name`, ...)
check counts, sizes, seeds and devices while the command line is parsed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from diffrepro.core import papers
from diffrepro.core.report import DemoResult, markdown_table

RUNS_DIR = Path("runs")


# --- shared conventions for paper commands -------------------------------------------------


USER_ERRORS = (ValueError, OSError, FloatingPointError)
SEED_LIMIT = 2**63


class _PresetDefault(str):
    """The default ``--preset`` value, told apart from an explicit one by :func:`preset_given`."""


def add_common_args(parser: argparse.ArgumentParser, *, preset: str = "demo") -> None:
    """--preset, --set key=value, --out, --device, --seed and --checkpoint."""
    parser.add_argument(
        "--preset", default=_PresetDefault(preset), help=f"paper | demo | tiny (default {preset})"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field (repeatable, e.g. --set steps=100)",
    )
    parser.add_argument(
        "--out", type=out_dir, default=None, help="output folder (default runs/...)"
    )
    parser.add_argument(
        "--device", type=device_name, default="auto", help="cpu, cuda, cuda:N or auto (default)"
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="model weights to load")


def preset_given(args: argparse.Namespace) -> bool:
    """Whether ``--preset`` was given on the command line (not just defaulted)."""
    preset = getattr(args, "preset", None)
    return preset is not None and not isinstance(preset, _PresetDefault)


def reject_together(args: argparse.Namespace, first: str, second: str, why: str) -> None:
    """An error when both flags were given (``--preset``'s default does not count)."""
    given = [_flag_given(args, flag) for flag in (first, second)]
    if all(given):
        raise ValueError(f"{first} and {second} cannot be used together: {why}")


def _flag_given(args: argparse.Namespace, flag: str) -> bool:
    if flag == "--preset":
        return preset_given(args)
    value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
    return value not in (None, False, [])


# --- argument types: checked while parsing, so a bad value is one argparse error line ---------


def positive_int(text: str) -> int:
    """An integer >= 1 (counts and sizes)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def seed_int(text: str) -> int:
    """A seed in [0, 2**63)."""
    value = _int(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed must be in [0, 2**63), got {text!r}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (availability is checked when it is used)."""
    name = text.strip().lower()
    if name in ("auto", "cpu", "cuda"):
        return name
    kind, _, index = name.partition(":")
    if kind in ("cpu", "cuda") and index.isdigit():
        return name
    raise argparse.ArgumentTypeError(f"unknown device {text!r} (use auto, cpu, cuda or cuda:N)")


def existing_path(text: str) -> Path:
    """A path that exists (a file or a folder)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"not found: {path}")
    return path


def existing_file(text: str) -> Path:
    path = existing_path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path} is a folder, expected a file")
    return path


def existing_dir(text: str) -> Path:
    path = existing_path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, expected a folder")
    return path


def out_dir(text: str) -> Path:
    """An output folder path: not an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, expected a folder to write into")
    return path


def out_file(text: str) -> Path:
    """An output file path: not an existing folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder, expected a file name to write")
    return path


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects an integer, got {text!r}") from None


def paper_parser(paper: papers.Paper) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A paper command's parser with its ``demo`` and ``cite`` subcommands already wired."""
    parser = argparse.ArgumentParser(
        prog=paper.slug.replace("_", "-"), description=f"{paper.title} (diffrepro reproduction)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="CPU-scale reproduction on embedded data")
    demo.add_argument("--out", type=out_dir, default=RUNS_DIR / paper.slug)
    demo.add_argument("--device", type=device_name, default="cpu")
    demo.add_argument("--seed", type=seed_int, default=0)
    demo.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    demo.set_defaults(func=lambda args: _run_demo(paper, args))
    cite = commands.add_parser("cite", help="print the paper's BibTeX")
    cite.set_defaults(func=lambda args: print(paper.bibtex.strip()))
    return parser, commands


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and call ``args.func(args)``; bad input becomes one error line (exit 2).

    A bad command line also gives one line (argparse's usage text is left to ``--help``). An
    unexpected exception is reported as an internal error (exit 1). Set ``DIFFREPRO_DEBUG=1``
    to see the full traceback instead.
    """
    _one_line_errors(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or the one-line usage error above
        return exit_.code if isinstance(exit_.code, int) else 0
    try:
        result = args.func(args)
    except USER_ERRORS as err:
        if os.environ.get("DIFFREPRO_DEBUG"):
            raise
        print(f"{parser.prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("DIFFREPRO_DEBUG"):
            raise
        print(
            f"{parser.prog}: internal error (a bug, please report it): {type(err).__name__}: "
            f"{one_line(err)} (run with DIFFREPRO_DEBUG=1 to see the traceback)",
            file=sys.stderr,
        )
        return 1
    return result if isinstance(result, int) else 0


def one_line(err: BaseException) -> str:
    """The exception's message on one line (its lines joined by ``; ``)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(err).__name__


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` and all its subcommands report a bad command line in one line."""

    def error(message: str) -> None:
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _one_line_errors(sub)


def _check_device(name: str) -> None:
    """A device that this machine lacks is a bad input (before any demo starts)."""
    from diffrepro.core.repro import resolve_device

    resolve_device(name)


def _run_demo(paper: papers.Paper, args: argparse.Namespace) -> None:
    _check_device(args.device)
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
    reproduce.add_argument("--out", type=out_dir, default=RUNS_DIR)
    reproduce.add_argument("--device", type=device_name, default="cpu")
    reproduce.add_argument("--seed", type=seed_int, default=0)
    reproduce.add_argument("--quick", action="store_true", help="seconds-long smoke runs")
    reproduce.set_defaults(func=_reproduce)
    from diffrepro.core.zoo.cli import add_zoo_command

    add_zoo_command(commands)
    from diffrepro.core.compare.cli import add_compare_command

    add_compare_command(commands)
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
    _check_device(args.device)
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
