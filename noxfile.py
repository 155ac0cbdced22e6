"""nox sessions of the diffrepro workspace (uv backend).

    uv run nox            lint, core, parity, every paper session and bad_inputs
    uv run nox -s adir    one paper, in a fresh environment holding only core + that paper
    uv run nox -s bench   benchmarks -> runs/bench/*.json and *.md
    uv run nox -s demo -- adir sdm   CPU demos and runs/REPORT.md (all papers without names)

Each session installs from the committed uv.lock (``uv sync --frozen``) into its own venv.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PAPERS = sorted(p.name for p in (ROOT / "packages").glob("*") if (p / "pyproject.toml").is_file())
TEST_TOOLS = ("pytest>=8",)

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "core", "parity", *PAPERS, "bad_inputs"]


def dist_name(slug: str) -> str:
    return "diffrepro-" + slug.replace("_", "-")


def sync(session: nox.Session, *args: str) -> None:
    """Install from uv.lock into this session's venv (inexact: keeps the test tools)."""
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--inexact",
        "--no-default-groups",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


def pytest(session: nox.Session, *args: str) -> None:
    """Run pytest and say how long it took (.ci/run reads these lines)."""
    start = time.perf_counter()
    session.run("pytest", *args, *session.posargs, env={"OMP_NUM_THREADS": "2"})
    session.log(f"{session.name}: tests took {time.perf_counter() - start:.0f} s")


@nox.session
def lint(session: nox.Session) -> None:
    """pre-commit (ruff check, ruff format, file hygiene) on every file."""
    session.install("pre-commit>=4")
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure")


@nox.session
def core(session: nox.Session) -> None:
    """diffrepro-core's tests (Triton kernels under the interpreter on CPU)."""
    sync(session, "--package", "diffrepro-core", "--extra", "demo")
    session.install(*TEST_TOOLS)
    pytest(session, "shared/tests", "-m", "not parity")


def _paper_session(slug: str) -> None:
    @nox.session(name=slug)
    def paper(session: nox.Session) -> None:
        sync(session, "--package", dist_name(slug))
        session.install(*TEST_TOOLS)
        pytest(session, f"packages/{slug}/tests", "-m", "not parity")

    paper.__doc__ = f"{slug}: its tests, with only diffrepro-core and {dist_name(slug)} installed."


for _slug in PAPERS:
    _paper_session(_slug)


@nox.session
def bad_inputs(session: nox.Session) -> None:
    """The bad-input suite: every command, exit code 2, one error line, nothing on disk lost."""
    sync(session, "--all-packages")
    session.install(*TEST_TOOLS)
    pytest(session, "tests/bad_inputs")


@nox.session
def parity(session: nox.Session) -> None:
    """Numerical parity with diffusers / transformers (test-only dependencies)."""
    sync(session, "--all-packages", "--group", "parity")
    session.install(*TEST_TOOLS)
    pytest(session, "shared/tests", *(f"packages/{s}/tests" for s in PAPERS), "-m", "parity")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: ratios against a reference measured in the same process.

    `nox -s bench -- --device cuda` runs only the GPU benchmark (shared/benchmarks/gpu_bench.py,
    Triton kernels vs SDPA / eager and the SD 1.5 UNet; other arguments are passed to it).
    """
    sync(session, "--all-packages", "--group", "parity")
    if "cuda" in session.posargs:
        session.run("python", "shared/benchmarks/gpu_bench.py", *session.posargs)
        return
    scripts = sorted(ROOT.glob("shared/benchmarks/bench_*.py"))
    scripts += sorted(ROOT.glob("packages/*/benchmarks/bench_*.py"))
    for script in scripts:
        session.run("python", str(script.relative_to(ROOT)), *session.posargs)
    session.log(f"results in {ROOT / 'runs' / 'bench'}")


@nox.session
def demo(session: nox.Session) -> None:
    """CPU demos: `nox -s demo -- adir sdm` (all papers when none are named)."""
    sync(session, "--all-packages", "--all-extras")
    chosen = session.posargs or ["--all"]
    session.run("diffrepro", "reproduce", *chosen, env={"OMP_NUM_THREADS": str(os.cpu_count())})
