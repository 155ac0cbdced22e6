"""End to end: restoration beats the unguided sample, training/loading, the demo and the CLI."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from diffrepro.adir.cli import main
from diffrepro.adir.config import PRESETS
from diffrepro.adir.embedders import ThumbnailEmbedder
from diffrepro.adir.guidance import GuidanceConfig, scale_for
from diffrepro.adir.images import save_image
from diffrepro.adir.model import build_model, load_model
from diffrepro.adir.paper import BIBTEX, PAPER
from diffrepro.adir.restore import guided_sample, restore
from diffrepro.adir.retrieval import build_index, list_images
from diffrepro.adir.tasks import make_operator, measure
from diffrepro.adir.train import train_base
from diffrepro.core.metrics import psnr

CFG = dataclasses.replace(PRESETS["tiny"], sample_steps="20")


def smooth_images(n, size=16, seed=0):
    low = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for i, image in enumerate(smooth_images(6, seed=1)):
        save_image(image, folder / f"{i}.png")
    return build_index(list_images(folder), ThumbnailEmbedder(), image_size=16)


@pytest.mark.parametrize("task", ["sr2_pool", "inpaint_box"])
def test_restoration_improves_psnr_over_the_unguided_sample(task, corpus):
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    op = make_operator(task, 16)
    cfg = dataclasses.replace(CFG, guidance=GuidanceConfig(scale=scale_for(op, (1, 3, 16, 16))))
    unguided = dataclasses.replace(CFG, guidance=GuidanceConfig(scale=0.0))
    for seed, clean in enumerate(smooth_images(2, seed=7)):
        clean = clean[None]
        y = measure(op, clean, 0.02, torch.Generator().manual_seed(seed))
        result = restore(
            model,
            op,
            y,
            16,
            cfg,
            index=corpus,
            embedder=ThumbnailEmbedder(),
            generator=torch.Generator().manual_seed(seed),
        )
        free = guided_sample(
            model, op, y, (1, 3, 16, 16), unguided, generator=torch.Generator().manual_seed(seed)
        )
        assert len(result.neighbours) == CFG.adapt.k
        assert psnr(result.restored, clean) > psnr(free.clamp(-1, 1), clean) + 0.5


def test_restore_samples_with_the_adapted_model(corpus):
    from diffrepro.adir.adapt import adapted_copy
    from diffrepro.adir.images import load_image
    from diffrepro.adir.model import train_schedule

    torch.manual_seed(0)
    model = build_model(CFG).eval()
    op = make_operator("sr2_pool", 16)
    cfg = dataclasses.replace(
        CFG,
        guidance=GuidanceConfig(scale=scale_for(op, (1, 3, 16, 16))),
        adapt=dataclasses.replace(CFG.adapt, lr=5e-2, iterations=3),
    )
    y = measure(op, smooth_images(1, seed=7), 0.02, torch.Generator().manual_seed(0))
    result = restore(
        model, op, y, 16, cfg, index=corpus, embedder=ThumbnailEmbedder(),
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    # Replay: the same generator adapts on the same neighbours, then samples the adapted copy.
    gen = torch.Generator().manual_seed(5)
    images = torch.stack([load_image(p, 16) for p in result.neighbours])
    adapted = adapted_copy(
        model, images, train_schedule(cfg), cfg.adapt, variance=cfg.variance, generator=gen
    )
    state = gen.get_state()
    expected = guided_sample(adapted, op, y, (1, 3, 16, 16), cfg, generator=gen).clamp(-1, 1)
    assert torch.equal(result.restored, expected)
    base = guided_sample(model, op, y, (1, 3, 16, 16), cfg, generator=gen.set_state(state))
    assert not torch.allclose(result.restored, base.clamp(-1, 1), atol=1e-4)


class Spy(torch.nn.Module):
    """Records the first input of every call of the wrapped model."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x, t):
        self.seen.append((x.clone(), t.clone()))
        return self.model(x, t)


def test_start_timestep_starts_from_the_noised_pseudo_inverse():
    from diffrepro.adir.model import sampling_schedule
    from diffrepro.adir.restore import naive_baseline, start_index
    from diffrepro.core.samplers import per_sample_noise

    torch.manual_seed(0)
    cfg = dataclasses.replace(CFG, start_timestep=400, guidance=GuidanceConfig(scale=0.5))
    schedule = sampling_schedule(cfg)
    first = start_index(schedule, 400)
    assert int(schedule.timesteps[first]) <= 400 < int(schedule.timesteps[first + 1])
    assert start_index(schedule, None) == len(schedule) - 1
    op = make_operator("sr2", 16)
    y = op.forward(smooth_images(1))
    spy = Spy(build_model(CFG).eval())
    guided_sample(spy, op, y, (1, 3, 16, 16), cfg, generator=torch.Generator().manual_seed(3))
    z = per_sample_noise((1, 3, 16, 16), torch.Generator().manual_seed(3), "cpu")
    abar = float(schedule.alphas_cumprod[first])
    expected = abar**0.5 * naive_baseline(op, y) + (1 - abar) ** 0.5 * z
    torch.testing.assert_close(spy.seen[0][0], expected)
    assert int(spy.seen[0][1][0]) == int(schedule.timesteps[first]) and len(spy.seen) == first + 1


def test_same_seed_same_restoration():
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    op = make_operator("sr2", 16)
    y = op.forward(smooth_images(1))
    first, second = (
        guided_sample(model, op, y, (1, 3, 16, 16), CFG, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    )
    assert torch.equal(first, second)


def test_train_then_load_round_trip(tmp_path):
    weights = train_base(lambda i: smooth_images(4, seed=i), PRESETS["tiny"], tmp_path / "run")
    model, cfg = load_model(tmp_path / "run", PRESETS["paper"])  # the run folder brings its config
    assert cfg.unet == PRESETS["tiny"].unet
    reloaded, _ = load_model(weights, PRESETS["tiny"])
    x, t = smooth_images(2), torch.tensor([5, 500])
    with torch.no_grad():
        assert torch.equal(model(x, t), reloaded(x, t))


def test_quick_demo_writes_finite_losses_scores_and_its_report(tmp_path):
    result = PAPER.run_demo(tmp_path / "demo", quick=True)
    assert result.report.is_file() and (tmp_path / "demo" / "figure.png").is_file()
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    report = result.report.read_text()
    losses = metrics["adapt_loss_first_last"]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    # per seed: one "extra" adaptation, per image one on random and one on retrieved images
    assert metrics["adaptations"] >= len(metrics["seeds"]) * (1 + 2 * 2) - 2 * 2
    for task in ("sr4", "inpaint_box"):
        for method in ("pinv", "guided", "extra", "random", "adir"):
            scores = metrics[task][method]
            assert {"psnr", "ssim", "residual_sigma"} <= set(scores)
            assert all(math.isfinite(v) for v in scores.values() if isinstance(v, float))
        for method in ("extra", "random", "adir"):  # adaptation changes the samples
            assert (
                metrics[task][method]["per_seed_psnr"] != metrics[task]["guided"]["per_seed_psnr"]
            )
        gain = metrics[task]["gains_db"]["adir_minus_random"]
        diffs = [
            a - b
            for a, b in zip(
                metrics[task]["adir"]["per_seed_psnr"], metrics[task]["random"]["per_seed_psnr"]
            )
        ]
        assert gain["per_seed"] == pytest.approx(diffs)
        assert gain["mean"] == pytest.approx(sum(diffs) / 2)
        assert (
            math.isfinite(gain["mean"]) and math.isfinite(gain["sd"]) and len(gain["per_seed"]) == 2
        )
        assert f"| {task} |" in report
        assert metrics[task]["guided"]["residual_sigma"] < 2  # projected to σ, then clamped
    assert "Statement of scale" in report and len(result.headline) == 3
    _check_photo_part(metrics, report)


def _check_photo_part(metrics, report):
    """The out-of-domain section: photo test crops, the emoji prior, the same controls."""
    photo = metrics["photo"]
    assert photo["test_images"] == ["synthetic photo 0 (centre)", "synthetic photo 1 (centre)"]
    assert photo["corpus_size"] > 8 and photo["embedder"] == "thumbnail8"
    # per seed: 2 retrieved + 2 random adaptations; "extra" is shared with the emoji part
    assert photo["adaptations_new"] == len(metrics["seeds"]) * 4
    assert all(math.isfinite(v) and v > 0 for v in photo["adapt_loss_first_last"])
    for method in ("pinv", "guided", "extra", "random", "adir"):
        assert all(math.isfinite(v) for v in photo["sr4"][method]["per_seed_psnr"])
    for method in ("random", "adir"):
        assert photo["sr4"][method]["per_seed_psnr"] != photo["sr4"]["guided"]["per_seed_psnr"]
    gain = photo["sr4"]["gains_db"]["adir_minus_random"]
    assert len(gain["per_seed"]) == 2 and math.isfinite(gain["sd"])
    assert set(photo["retrieval_check"]) == {"thumbnail8/sr4", "chance"}
    assert "## Out of domain: emoji-ddpm on photo crops" in report


def test_cli_cite_and_bibtex_file_agree(capsys):
    assert main(["cite"]) == 0
    assert capsys.readouterr().out.strip() == BIBTEX.strip()
    bib = Path(__file__).parents[1] / "CITATION.bib"
    if bib.is_file():
        assert bib.read_text().strip() == BIBTEX.strip()


def test_cli_restore_and_index(tmp_path, capsys):
    weights = train_base(lambda i: smooth_images(4, seed=i), PRESETS["tiny"], tmp_path / "run")
    corpus = tmp_path / "corpus"
    for i, image in enumerate(smooth_images(5, seed=2)):
        save_image(image, corpus / f"{i}.png")
    clean = save_image(smooth_images(1, seed=9)[0], tmp_path / "clean.png")
    assert (
        main(
            [
                "index",
                "--corpus",
                str(corpus),
                "--out",
                str(tmp_path / "index.npz"),
                "--image-size",
                "16",
            ]
        )
        == 0
    )
    argv = [
        "restore",
        "--preset",
        "tiny",
        "--checkpoint",
        str(weights),
        "--task",
        "sr4",
        "--clean",
        str(clean),
        "--index",
        str(tmp_path / "index.npz"),
        "--out",
        str(tmp_path / "out"),
        "--set",
        "sample_steps=3",
    ]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert len(metrics["neighbours"]) == PRESETS["tiny"].adapt.k and "psnr" in metrics
    assert (tmp_path / "out" / "figure.png").is_file()
    low = save_image(smooth_images(1, seed=9)[0, :, ::4, ::4], tmp_path / "low.png")
    argv = [
        "restore",
        "--preset",
        "tiny",
        "--checkpoint",
        str(weights),
        "--task",
        "sr4",
        "--input",
        str(low),
        "--out",
        str(tmp_path / "out2"),
        "--set",
        "sample_steps=3",
    ]
    assert main(argv) == 0
    assert (tmp_path / "out2" / "restored.png").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["restore", "--task", "sr4", "--clean", "missing.png", "--checkpoint", "nope.pt"],
            "checkpoint not found",
        ),
        (["restore", "--task", "sr4", "--clean", "x.png"], "needs --checkpoint"),
        (["train", "--data", "no_such_folder", "--preset", "tiny"], "image folder not found"),
        (
            [
                "restore",
                "--task",
                "sr4",
                "--clean",
                "x.png",
                "--checkpoint",
                "x",
                "--preset",
                "huge",
            ],
            "unknown preset",
        ),
    ],
)
def test_cli_bad_input_is_one_error_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_guided_diffusion_pt_state_dict_loads(tmp_path):
    # The official 256x256_diffusion_uncond.pt is a plain state dict of guided-diffusion's UNet;
    # here the same layout at the tiny preset's size (DDP "module." prefix included).
    torch.manual_seed(1)
    source = build_model(PRESETS["tiny"])
    torch.save(
        {f"module.{k}": v.half() for k, v in source.state_dict().items()}, tmp_path / "adm.pt"
    )
    model, cfg = load_model(tmp_path / "adm.pt", PRESETS["tiny"])
    assert cfg == PRESETS["tiny"]
    for name, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value.half().float())
    with pytest.raises(ValueError, match="cannot load weights"):
        load_model(tmp_path / "adm.pt", PRESETS["demo"])


def test_train_rejects_checkpoint_with_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "data"), "--preset", "tiny", "--out", str(out)]
    assert main([*argv, "--checkpoint", str(weights)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--checkpoint {weights}" in err
    assert "resumes from its --out folder" in err
    assert not out.exists() and weights.read_bytes() == b"x"
