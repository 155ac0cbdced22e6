"""``diffrepro compare editing``: the contract, the baselines' counts, the measures, the cache,
failure handling and the task-file boundary (tiny random models only)."""

import json

import numpy as np
import pytest
import torch

from diffrepro.core.cli import main
from diffrepro.core.compare import EditMethod, EditResult, count_unet_evals
from diffrepro.core.compare.baselines import ddim_word_swap, sdedit_word_swap
from diffrepro.core.compare.contract import check_result, select
from diffrepro.core.compare.editing import load_judge
from diffrepro.core.compare.metrics import masked_mse, self_similarity, structure_distance
from diffrepro.core.compare.runner import Base, run_all
from diffrepro.core.compare.tasks import emoji_task, one_word_pairs, read_tasks, swapped_words
from diffrepro.core.emoji import find
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion


@pytest.fixture(scope="module")
def sd():
    return tiny_stable_diffusion(seed=0)


@pytest.fixture(scope="module")
def task():
    return emoji_task(find("dog face"), find("cat face"), 32)


def test_ddim_baseline_counts_and_replays_its_inversion(sd, task):
    steps = 3
    result = ddim_word_swap(sd, task.image, task.source, task.target, seed=0, steps=steps)
    assert result.unet_evals == steps + 2 * steps  # inversion at w = 1, CFG regeneration
    again = ddim_word_swap(sd, task.image, task.source, task.target, seed=5, steps=steps)
    torch.testing.assert_close(again.edited, result.edited)  # deterministic: no seed used
    same = ddim_word_swap(sd, task.image, task.source, task.source, seed=0, steps=steps)
    torch.testing.assert_close(same.edited, result.reconstruction)


def test_sdedit_counts_half_the_grid_and_follows_the_seed(sd, task):
    a = sdedit_word_swap(sd, task.image, task.source, task.target, seed=0, steps=6)
    b = sdedit_word_swap(sd, task.image, task.source, task.target, seed=1, steps=6)
    assert a.unet_evals == 2 * 3 and a.reconstruction is None
    assert not torch.allclose(a.edited, b.edited)
    c = sdedit_word_swap(sd, task.image, task.source, task.target, seed=0, steps=6)
    torch.testing.assert_close(a.edited, c.edited)


def test_count_unet_evals_counts_batch_rows(sd):
    x = torch.zeros(3, 4, 8, 8)
    ctx = sd.encode_prompt(["a cat"] * 3)
    with torch.no_grad(), count_unet_evals(sd) as n:
        sd.unet(x, torch.zeros(3, dtype=torch.long), ctx)
        sd.unet(x[:1], torch.zeros(1, dtype=torch.long), ctx[:1])
    assert n[0] == 4
    sd.unet(x[:1], torch.zeros(1, dtype=torch.long), ctx[:1])
    assert n[0] == 4  # the hook is gone after the block


def test_masked_mse_matches_numpy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 8, 8, generator=g)
    w = torch.rand(1, 1, 8, 8, generator=g)
    an, bn, wn = a.numpy().astype(np.float64), b.numpy().astype(np.float64), w.numpy()
    expected = ((an - bn) ** 2 * wn).sum() / (wn.sum() * 3)
    assert masked_mse(a, b, w) == pytest.approx(expected, rel=1e-6)
    assert masked_mse(a, b, torch.zeros_like(w)) is None


def test_self_similarity_matches_numpy_and_structure_ignores_colour_shifts():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 8, 8, generator=g)
    patches = x.double().numpy()[0].reshape(3, 2, 4, 2, 4).transpose(1, 3, 0, 2, 4).reshape(4, -1)
    patches = patches - patches.mean(1, keepdims=True)
    patches /= np.linalg.norm(patches, axis=1, keepdims=True)
    np.testing.assert_allclose(self_similarity(x)[0].numpy(), patches @ patches.T, atol=1e-12)
    assert structure_distance(x, x) == 0.0
    assert structure_distance(x, x * 0.5 + 0.2) == pytest.approx(0.0, abs=1e-12)
    assert structure_distance(x, x.flip(-1)) > 1e-3


def test_swapped_words():
    assert swapped_words("an emoji of a dog face", "an emoji of a cat face") == ("dog", "cat")
    old, new = swapped_words("a red apple", "a green apple with leaf")
    assert (old, new) == ("red apple", "green apple with leaf")
    assert swapped_words("a red apple", "a green apple") == ("red", "green")
    with pytest.raises(ValueError, match="do not swap"):
        swapped_words("a cat", "a cat")


def test_default_pairs_are_held_out_one_word_swaps():
    pairs = one_word_pairs(4)
    assert len(pairs) == 4
    for source, target in pairs:
        assert source.heldout and not target.heldout and source.coarse == target.coarse
        a, b = source.name.split(), target.name.split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


def test_check_result_rejects_bad_shapes_and_non_finite(task):
    good = torch.zeros_like(task.image)
    check_result(EditResult(good, None, 3), task.image, "m")
    with pytest.raises(ValueError, match="shape"):
        check_result(EditResult(good[:, :, :8], None, 3), task.image, "m")
    with pytest.raises(FloatingPointError, match="reconstruction"):
        check_result(EditResult(good, good / 0, 3), task.image, "m")


def _failing(sd, image, source, target, *, seed, steps):
    raise RuntimeError("boom")


def test_a_failing_method_is_recorded_and_the_others_run(sd, task, tmp_path):
    methods = [
        EditMethod("broken", "Broken", _failing),
        EditMethod("sdedit", "S", sdedit_word_swap),
    ]
    base, judge = Base(sd, "tiny", 4), load_judge(torch.device("cpu"), quick=True)
    rows = run_all(methods, [task], [0], base, judge, tmp_path)
    assert rows[0]["status"] == "failed" and "boom" in rows[0]["error"]
    assert rows[1]["status"] == "ok" and rows[1]["unet_evals"] == 4
    assert not (tmp_path / "cells" / "broken").exists()  # failures are not cached


def test_select_names_unknown_methods():
    methods = {"ddim": EditMethod("ddim", "D", _failing)}
    with pytest.raises(ValueError, match="nope not installed"):
        select(methods, ["nope"])


def test_quick_cli_writes_outputs_and_reuses_cells(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compare", "editing", "--quick", "--methods", "ddim", "sdedit", "--steps", "3"]
    argv += ["--count", "1", "--out", str(out)]
    assert main(argv) == 0
    for name in ("table.md", "metrics.json", "grid.png", "scatter.png"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["summary"]) == {"ddim", "sdedit"}
    assert metrics["summary"]["ddim"]["unet_evals"]["mean"] == 9
    assert metrics["summary"]["ddim"]["time_ratio"] == 1.0
    cells = sorted((out / "cells").rglob("*.json"))
    stamps = [c.stat().st_mtime_ns for c in cells]
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().err.count(": cached,") == 2
    assert [c.stat().st_mtime_ns for c in cells] == stamps
    assert json.loads((out / "metrics.json").read_text())["summary"] == metrics["summary"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "is not valid JSON"),
        ("[]", "lists no tasks"),
        ('{"x": 1}', "must hold a list"),
        ('[{"source_emoji": "dog face"}]', "missing field 'target_emoji'"),
        ('[{"source_emoji": "dog face", "target_emoji": "no such"}]', "not an emoji name"),
        ('[{"image": "missing.png", "source_prompt": "a", "target_prompt": "b"}]', "not found"),
        ('[{"source_emoji": "dog face", "target_emoji": "cat face", "bad": "x"}]', "unknown"),
        ('[{"source_emoji": 3, "target_emoji": "cat face"}]', "non-empty string"),
    ],
)
def test_bad_task_files_give_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "tasks.json"
    path.write_text(content)
    out = tmp_path / "out"
    assert main(["compare", "editing", "--quick", "--tasks", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(path) in err
    assert not out.exists()


def test_task_file_with_an_image_and_an_emoji_pair(tmp_path):
    from PIL import Image

    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(tmp_path / "red.png")
    path = tmp_path / "tasks.json"
    tasks = [
        {"image": "red.png", "source_prompt": "a red dog", "target_prompt": "a cat"},
        {"source_emoji": "dog face", "target_emoji": "cat face"},
    ]
    path.write_text(json.dumps({"tasks": tasks}))
    own, pair = read_tasks(path, 32)
    assert own.image.shape == (1, 3, 32, 32) and own.mask is not None
    assert own.mask.mean().item() == pytest.approx(128 / 255, abs=1e-6)
    assert own.target_index is None
    assert pair.target_index == find("cat face").index and pair.source.endswith("dog face")
