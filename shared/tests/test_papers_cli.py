"""The registration contract: a package announces a Paper in the ``diffrepro.papers`` group."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from diffrepro.core import cli, papers
from diffrepro.core.report import DemoResult, Headline

FAKE_MODULE = """
from pathlib import Path
from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult, Headline, write_metrics

def demo(out_dir: Path, *, device="cpu", seed=0, quick=False):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text(f"# fake report seed={seed} quick={quick}")
    write_metrics(out_dir, {"score": 1.5 + seed})
    return DemoResult(out_dir / "report.md", (Headline("score", "2.0", f"{1.5 + seed}"),))

PAPER = Paper(
    slug="fakepaper", title="A Fake Paper", arxiv="0000.00000",
    bibtex="@article{fake, title={A Fake Paper}}", status="test", demo=demo,
)
"""


@pytest.fixture()
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install a fake paper package (a module plus a dist-info with an entry point)."""
    (tmp_path / "fake_paper_mod.py").write_text(FAKE_MODULE)
    info = tmp_path / "fakepaper-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepaper\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [diffrepro.papers]
            fakepaper = fake_paper_mod:PAPER
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fake_paper_mod", None)


def test_discover_finds_registered_package(fake_package: Path) -> None:
    found = papers.discover()
    assert found["fakepaper"].title == "A Fake Paper"
    assert papers.get("fakepaper").arxiv == "0000.00000"


def test_get_unknown_slug_names_installed(fake_package: Path) -> None:
    with pytest.raises(ValueError, match="fakepaper"):
        papers.get("no-such-paper")


def test_wrong_slug_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad_slug_mod.py").write_text(FAKE_MODULE)
    info = tmp_path / "badslug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badslug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[diffrepro.papers]\nother = bad_slug_mod:PAPER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="slug"):
        papers.discover()


def test_list_and_cite(fake_package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    assert "fakepaper" in capsys.readouterr().out
    assert cli.main(["cite", "fakepaper"]) == 0
    assert capsys.readouterr().out.strip() == "@article{fake, title={A Fake Paper}}"


def test_cite_unknown_is_one_error_line(fake_package: Path, capsys) -> None:
    assert cli.main(["cite", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]


def test_reproduce_writes_summary(fake_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    assert cli.main(["reproduce", "fakepaper", "--out", str(out), "--seed", "1"]) == 0
    summary = (out / "REPORT.md").read_text()
    assert "| score | 2.0 | 2.5 |" in summary
    assert "fakepaper/report.md" in summary
    assert (out / "fakepaper" / "metrics.json").is_file()


def test_reproduce_records_failures(tmp_path: Path) -> None:
    def broken(out_dir: Path, **_: object) -> DemoResult:
        raise RuntimeError("boom")

    def fine(out_dir: Path, **_: object) -> DemoResult:
        return DemoResult(out_dir / "r.md", (Headline("m", "1", "1"),))

    selected = {
        "a": papers.Paper("a", "Paper A", None, "", "test", broken),
        "b": papers.Paper("b", "Paper B", None, "", "test", fine),
    }
    results = {"a": "failed: RuntimeError: boom", "b": fine(tmp_path / "b")}
    text = cli.write_summary(tmp_path, selected, results).read_text()
    assert "failed: RuntimeError: boom" in text and "| m | 1 | 1 |" in text


def test_reproduce_needs_slugs_or_all(capsys) -> None:
    assert cli.main(["reproduce"]) == 2
    assert "--all" in capsys.readouterr().err


def test_markdown_table_escapes_pipes() -> None:
    from diffrepro.core.report import markdown_table

    table = markdown_table([Headline("error |x - y|", "1", "2", "")]).splitlines()
    assert table[2] == r"| error \|x - y\| | 1 | 2 |  |"
    assert all(row.count("|") - row.count(r"\|") == 5 for row in table)
