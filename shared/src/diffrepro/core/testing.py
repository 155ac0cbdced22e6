"""Test helpers for the bad-input contract of every command (DESIGN.md §4 "Bad input").

A bad input must give exit code 2, exactly one line on stderr naming the problem, no traceback,
and leave the disk as it was (no file changed, nothing half-written, no new folders)::

    from diffrepro.core.testing import BadInput, check_bad_input

    CASES = [
        BadInput("sample --steps 0", ["sample", "--steps", "0"], match="--steps"),
        BadInput("missing image", ["edit", "--input", "{tmp}/nope.png"], match="nope.png"),
    ]

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
    def test_bad_input(case, tmp_path, capsys, monkeypatch):
        check_bad_input(main, case, tmp_path, capsys, monkeypatch)

``{tmp}`` in an argument is replaced by the case's folder, which is also the working directory
(so default outputs such as ``runs/...`` land in it and are watched) and the cache home.
``setup(tmp)`` prepares files (an existing run, a corrupt checkpoint) before the snapshot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MainFn = Callable[[Sequence[str]], int]


@dataclass(frozen=True)
class BadInput:
    """One bad command line: ``argv`` must fail with one error line matching ``match``
    (a case-insensitive regular expression)."""

    name: str
    argv: Sequence[str]
    match: str
    setup: Callable[[Path], Any] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def args(self, tmp: Path, places: dict[str, Path] | None = None) -> list[str]:
        """``argv`` with ``{tmp}`` (and every ``{name}`` of ``places``) filled in."""
        places = {"tmp": tmp, **(places or {})}
        out = []
        for arg in self.argv:
            for name, value in places.items():
                arg = arg.replace("{" + name + "}", str(value))
            out.append(arg)
        return out


def snapshot(root: Path) -> dict[str, str]:
    """Every file (its SHA-256) and folder under ``root``, by relative path."""
    state = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            state[rel + "/"] = "dir"
        else:
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def run_main(main: MainFn, argv: Sequence[str]) -> int:
    """``main(argv)``'s exit code, also when argparse exits through SystemExit."""
    try:
        return main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)


def check_bad_input(
    main: MainFn,
    case: BadInput,
    tmp: Path,
    capsys,
    monkeypatch,
    places: dict[str, Path] | None = None,
) -> str:
    """Run ``case`` in-process and assert the bad-input contract; returns the error line.

    ``places`` fills further ``{name}`` placeholders (e.g. a folder of prepared inputs)."""
    tmp = Path(tmp)
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    monkeypatch.delenv("DIFFREPRO_DEBUG", raising=False)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.setup is not None:
        case.setup(tmp)
    before = snapshot(tmp)
    capsys.readouterr()
    code = run_main(main, case.args(tmp, places))
    out, err = capsys.readouterr()
    return assert_bad_input_result(case, code, out, err, before, snapshot(tmp))


def assert_bad_input_result(
    case: BadInput, code: int, out: str, err: str, before: dict, after: dict
) -> str:
    """The checks of :func:`check_bad_input` on a finished run (also used for subprocesses)."""
    context = f"{case.name}: exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err, context
    assert code == 2, context
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, context
    assert re.search(case.match, lines[0], re.IGNORECASE), f"{context}\nexpected: {case.match}"
    assert "internal error" not in lines[0], context
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"{context}\nthe disk changed: {changed}"
    return lines[0]
