"""Progress: periodic one-line reports in a log, nothing when disabled, items unchanged."""

from diffrepro.core import progress


def test_track_prints_lines_in_a_log_and_keeps_the_items(capsys, monkeypatch):
    monkeypatch.setenv("DIFFREPRO_PROGRESS_SECONDS", "0")
    assert list(progress.track(range(3), desc="demo stage")) == [0, 1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("demo stage: step 3/3 (100%), elapsed ")
    assert len(lines) == 3 and all("ETA" in line for line in lines)


def test_track_is_silent_when_disabled(capsys):
    assert list(progress.track(iter("ab"), desc="x", disable=True)) == ["a", "b"]
    assert capsys.readouterr().err == ""


def test_lines_are_rate_limited_but_the_last_step_always_reports(capsys, monkeypatch):
    monkeypatch.setenv("DIFFREPRO_PROGRESS_SECONDS", "3600")
    lines = progress.ProgressLines("train", 10)
    for done in range(1, 11):
        lines.update(done, "loss 0.5000")
    (only,) = capsys.readouterr().err.splitlines()
    assert only.startswith("train: step 10/10 (100%), loss 0.5000, elapsed ")


def test_duration_format():
    assert progress.duration(7.2) == "7s"
    assert progress.duration(62) == "1m02s"
    assert progress.duration(float("nan")) == "?"
