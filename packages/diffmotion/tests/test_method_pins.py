"""Tests that pin DiffMotion's equations to independent references (float64 numpy rewrites,
librosa-computed features, hand-computed medians), so a broken index, padding or term fails."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from diffrepro.diffmotion.audio import MelConfig, log_mel
from diffrepro.diffmotion.config import PRESETS, DiffMotionConfig, ModelConfig, SamplingConfig
from diffrepro.diffmotion.data import Utterance, training_clips
from diffrepro.diffmotion.denoiser import EpsilonTheta
from diffrepro.diffmotion.generate import generate, reduce_samples, sampling_schedule
from diffrepro.diffmotion.model import DiffMotion
from diffrepro.diffmotion.skeleton import UPPER_BODY
from diffrepro.diffmotion.train import dropout_loss

REFERENCE = Path(__file__).with_name("data") / "logmel_reference.json"
TINY = PRESETS["tiny"]


def _load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("data") / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- log-mel features against librosa ----------------------------------------------------------


def test_log_mel_matches_librosa_reference():
    """``data/logmel_reference.json`` was written by librosa (``make_logmel_reference.py``,
    which also defines the test signal)."""
    ref = json.loads(REFERENCE.read_text())
    audio = _load_script("make_logmel_reference.py").test_signal()
    ours = log_mel(audio, 16000, MelConfig())
    expected = np.array(ref["log_mel"])
    assert ours.shape == expected.shape == (13, 27)
    loud = expected > np.log(1e-6)  # where float32 round-off is negligible against the power
    assert loud.mean() > 0.5
    np.testing.assert_allclose(ours[loud], expected[loud], atol=2e-3)
    np.testing.assert_allclose(ours, expected, atol=0.5)  # the floor region too, loosely


# --- the denoiser against a float64 numpy rewrite ------------------------------------------------


def _leaky(x):
    return np.where(x > 0, x, 0.4 * x)


def _conv1d(x, weight, bias, dilation=1, pad=0):
    """Circularly padded 1-D convolution: x (B, Cin, L), weight (Cout, Cin, K)."""
    if pad:
        x = np.concatenate([x[..., -pad:], x, x[..., :pad]], axis=-1)
    k = weight.shape[-1]
    length = x.shape[-1] - dilation * (k - 1)
    out = np.zeros((x.shape[0], weight.shape[0], length))
    for tap in range(k):
        piece = x[..., tap * dilation : tap * dilation + length]
        out += np.einsum("oc,bcl->bol", weight[:, :, tap], piece)
    return out + bias[None, :, None]


def _silu(x):
    return x / (1 + np.exp(-x))


def _reference_eps(net: EpsilonTheta, x, step, cond, cfg: ModelConfig):
    p = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    # the module's float32 table (checked against float64 in its own test)
    emb = net.diffusion_embedding.embedding[step].double().numpy()
    emb = _silu(emb @ p["diffusion_embedding.projection1.weight"].T
                + p["diffusion_embedding.projection1.bias"])  # fmt: skip
    emb = _silu(emb @ p["diffusion_embedding.projection2.weight"].T
                + p["diffusion_embedding.projection2.bias"])  # fmt: skip
    c = _leaky(cond @ p["cond_upsampler.linear1.weight"].T + p["cond_upsampler.linear1.bias"])
    c = _leaky(c @ p["cond_upsampler.linear2.weight"].T + p["cond_upsampler.linear2.bias"])
    c = c[:, None, :]
    h = _leaky(_conv1d(x, p["input_projection.weight"], p["input_projection.bias"], pad=2))
    skips = []
    for i in range(cfg.residual_layers):
        q = f"residual_layers.{i}."
        d = 2 ** (i % cfg.dilation_cycle)
        y = h + (emb @ p[q + "diffusion_projection.weight"].T
                 + p[q + "diffusion_projection.bias"])[:, :, None]  # fmt: skip
        y = _conv1d(y, p[q + "dilated_conv.weight"], p[q + "dilated_conv.bias"], d, pad=d)
        y = y + _conv1d(c, p[q + "conditioner_projection.weight"],
                        p[q + "conditioner_projection.bias"], pad=2)  # fmt: skip
        channels = y.shape[1] // 2
        gate, filt = y[:, :channels], y[:, channels:]
        y = 1 / (1 + np.exp(-gate)) * np.tanh(filt)
        y = _leaky(_conv1d(y, p[q + "output_projection.weight"], p[q + "output_projection.bias"]))
        h = (h + y[:, :channels]) / math.sqrt(2.0)
        skips.append(y[:, channels:])
    h = sum(skips) / math.sqrt(cfg.residual_layers)
    h = _leaky(_conv1d(h, p["skip_projection.weight"], p["skip_projection.bias"]))
    return _conv1d(h, p["output_projection.weight"], p["output_projection.bias"])


def test_step_embedding_table_is_sin_then_cos_of_n_times_ten_to_4d_over_dim():
    dim = 8
    net = EpsilonTheta(ModelConfig(pose_dim=12, step_embedding_dim=dim, residual_layers=3))
    f32 = np.float32
    n = np.arange(500, dtype=f32)[:, None]
    powers = f32(10.0) ** (np.arange(dim, dtype=f32) * f32(4.0) / f32(dim))
    table = (n * powers[None]).astype(np.float64)  # the float32 arguments, sin/cos in float64
    expected = np.concatenate([np.sin(table), np.cos(table)], 1)
    ours = net.diffusion_embedding.embedding.double().numpy()
    assert ours.shape == (500, 2 * dim)
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_denoiser_matches_a_float64_numpy_rewrite():
    cfg = ModelConfig(pose_dim=12, lstm_hidden=8, residual_layers=4, residual_channels=3,
                      residual_hidden=16, step_embedding_dim=8, dilation_cycle=3)  # fmt: skip
    torch.manual_seed(0)
    net = EpsilonTheta(cfg).double()
    torch.nn.init.normal_(net.output_projection.weight, std=0.5)  # undo the zero init
    x = torch.randn(5, 1, 12, dtype=torch.float64)
    step = torch.tensor([0, 3, 17, 50, 99])
    cond = torch.randn(5, 8, dtype=torch.float64)
    with torch.no_grad():
        ours = net(x, step, cond).numpy()
    expected = _reference_eps(net, x.numpy(), step, cond.numpy(), cfg)
    assert ours.shape == (5, 1, 12)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


# --- training loss: the LSTM output of row t conditions target t -------------------------------


def test_loss_pairs_each_target_with_its_own_lstm_output():
    torch.manual_seed(1)
    model = DiffMotion(TINY.model).double().eval()
    torch.nn.init.normal_(model.denoise_fn.output_projection.weight, std=0.5)
    m = TINY.model
    cond = torch.randn(2, 6, m.condition_dim, dtype=torch.float64)
    target = torch.randn(2, 6, m.pose_dim, dtype=torch.float64)
    with torch.no_grad():
        loss = model.loss(cond, target, generator=torch.Generator().manual_seed(3))
        # the same draws, in the same order: one step per (clip, frame), then the noise
        g = torch.Generator().manual_seed(3)
        t = torch.randint(0, m.diffusion_steps, (12,), generator=g)
        noise = torch.randn(12, 1, m.pose_dim, generator=g).double()
        h, _ = model.rnn(cond)
        abar = torch.tensor(model.schedule.alphas_cumprod, dtype=torch.float64)[t]
        x0 = target.reshape(12, 1, -1)
        x_t = abar.sqrt()[:, None, None] * x0 + (1 - abar).sqrt()[:, None, None] * noise
        eps = model.denoise_fn(x_t, t, h.reshape(12, -1))
        expected = ((noise - eps) ** 2).mean()
        shifted = torch.cat([h[:, :1], h[:, :-1]], 1).reshape(12, -1)
        wrong = ((noise - model.denoise_fn(x_t, t, shifted)) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    assert abs(wrong.item() - expected.item()) > 1e-6  # the test can tell a shift apart


# --- data dropout is applied by the training loss ------------------------------------------------


def test_training_loss_applies_data_dropout_to_the_pose_slots_only():
    m = TINY.model
    seen = []

    def recorder(cond, target):
        seen.append(cond)
        return cond.sum() * 0

    cond = torch.ones(64, 30, m.condition_dim)
    torch.manual_seed(0)
    dropout_loss(TINY)(recorder, (cond, torch.zeros(64, 30, m.pose_dim)))
    poses = seen[0][..., : m.seqlen * m.pose_dim].reshape(64, 30, m.seqlen, m.pose_dim)
    slot_kept = poses[..., 0]
    assert torch.equal(poses, slot_kept[..., None].expand_as(poses))  # whole frames
    assert abs(slot_kept.mean().item() - 0.8) < 0.02  # the paper's p = 0.2
    assert torch.equal(seen[0][..., m.seqlen * m.pose_dim :], cond[..., m.seqlen * m.pose_dim :])


def test_the_paper_and_demo_recipes_use_data_dropout_0_2():
    assert DiffMotionConfig().data_dropout == 0.2
    for name in ("paper", "demo", "tiny"):
        assert PRESETS[name].data_dropout == 0.2, name


# --- median of K > 1 -----------------------------------------------------------------------------


def test_median_of_k_is_the_per_dimension_median():
    samples = torch.tensor(
        [[[5.0, -1.0]], [[1.0, 4.0]], [[3.0, 0.0]], [[9.0, 2.0]], [[-2.0, 7.0]]]
    )  # (K=5, B=1, D=2)
    assert reduce_samples(samples, "median").tolist() == [[3.0, 2.0]]
    assert torch.allclose(reduce_samples(samples, "mean"), torch.tensor([[3.2, 2.4]]))
    assert reduce_samples(samples[:1], "none").tolist() == [[5.0, -1.0]]
    even = torch.tensor([[[1.0]], [[4.0]], [[2.0]], [[10.0]]])
    assert reduce_samples(even, "median").tolist() == [[3.0]]  # torch.quantile(0.5) interpolates


# --- clips never span two recordings -------------------------------------------------------------


def test_clips_are_cut_within_each_recording():
    d, a = 3 * len(UPPER_BODY), 27
    lengths = (50, 23, 31)  # 23 < clip: gives no clip
    utterances = [
        Utterance(f"u{k}", np.full((n, a), float(k)), np.full((n, d), float(k)))
        for k, n in enumerate(lengths)
    ]
    poses, speech = training_clips(utterances, 30, 10, UPPER_BODY, mirror=False)
    assert poses.shape == (3 + 1, 30, d)  # starts 0, 10, 20 in u0; 0 in u2
    for clip_p, clip_s in zip(poses, speech):
        assert len(np.unique(clip_p)) == 1 and len(np.unique(clip_s)) == 1
    with pytest.raises(ValueError, match="no recording holds one 60-frame clip"):
        training_clips(utterances, 60, 10, UPPER_BODY, mirror=False)


# --- K samples per frame stay with their own sequence --------------------------------------------


class _Oracle(DiffMotion):
    """A denoiser whose x0 estimate is exactly the LSTM output (tiled to the pose length), so
    every sample of a frame is that value and any mixing of sequences shows in the output."""

    def denoise(self, x, step, h):
        abar = torch.tensor(self.schedule.alphas_cumprod, dtype=x.dtype)[step][:, None, None]
        x0 = torch.cat([h, h], dim=-1)[:, None, : x.shape[-1]]
        return (x - abar.sqrt() * x0) / (1 - abar).sqrt()


def test_samples_per_frame_are_grouped_by_their_own_sequence():
    m = TINY.model
    torch.manual_seed(0)
    model = _Oracle(m).eval()
    speech = torch.stack([torch.full((6, m.audio_dim), -2.0), torch.full((6, m.audio_dim), 2.0)])
    single = generate(model, speech, SamplingConfig(), generator=torch.Generator().manual_seed(0))
    median = generate(
        model, speech, SamplingConfig(samples_per_frame=3, reduce="median"),
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    mean = generate(
        model, speech, SamplingConfig(samples_per_frame=3, reduce="mean"),
        generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    assert not torch.allclose(single[0], single[1], atol=1e-3)  # the sequences differ
    torch.testing.assert_close(median, single, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mean, single, atol=1e-5, rtol=1e-5)  # the mean is not robust


# --- generate() emits the median of K > 1 samples ------------------------------------------------


class _ZeroEps(DiffMotion):
    """eps_theta = 0: with one (respaced) sampling step a sample is its starting noise divided
    by sqrt(alpha-bar), so every sample of a frame is known from the generator's draws."""

    def denoise(self, x, step, h):
        return torch.zeros_like(x)


def test_generate_emits_the_per_dimension_median_of_k_samples():
    m, k, batch, frames = TINY.model, 5, 2, 4
    model = _ZeroEps(m).eval()
    speech = torch.randn(batch, frames, m.audio_dim)
    cfg = SamplingConfig(samples_per_frame=k, reduce="median", steps=1)
    out = generate(model, speech, cfg, generator=torch.Generator().manual_seed(7))
    abar = float(sampling_schedule(model, 1).alphas_cumprod[0])
    g = torch.Generator().manual_seed(7)
    samples = torch.stack([
        torch.randn(k * batch, 1, m.pose_dim, generator=g).reshape(k, batch, m.pose_dim)
        for _ in range(frames)
    ], dim=2) / math.sqrt(abar)  # (K, B, frames, D), the draws in generate's order  # fmt: skip
    expected = samples.median(dim=0).values  # K odd: the median is one of the samples
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(out, samples[0], atol=1e-3)


# --- golden: the official-size denoiser on a fixed input and seed --------------------------------


def test_official_size_denoiser_matches_its_golden_output():
    """``data/denoiser_golden.json`` holds the float64 numpy rewrite's output for the official
    configuration (45 dims, 6 layers, dilations 1..32 on the circularly padded length 49),
    written by ``data/make_denoiser_golden.py``; our float32 module must reproduce it."""
    golden = json.loads((Path(__file__).with_name("data") / "denoiser_golden.json").read_text())
    net, x, step, cond, _ = _load_script("make_denoiser_golden.py").golden_case()
    assert step.tolist() == golden["steps"]
    with torch.no_grad():
        ours = net.float()(x.float(), step, cond.float())[:, 0].double().numpy()
    np.testing.assert_allclose(ours, np.array(golden["output"]), rtol=0, atol=2e-6)
