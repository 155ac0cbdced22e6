import dataclasses

import numpy as np
import pytest
import torch

from diffrepro.diffmotion.config import PRESETS, ModelConfig, SamplingConfig
from diffrepro.diffmotion.denoiser import EpsilonTheta
from diffrepro.diffmotion.generate import generate
from diffrepro.diffmotion.model import DiffMotion
from diffrepro.diffmotion.train import build_model, fit_statistics, load_model, train_model
from diffrepro.diffmotion.windows import condition_windows, data_dropout

TINY = PRESETS["tiny"]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = DiffMotion(TINY.model).eval()
    torch.nn.init.normal_(model.denoise_fn.output_projection.weight, std=0.5)  # undo the zero init
    return model


def test_windows_hold_the_right_frames():
    frames, d, a, seqlen, lookahead = 40, 2, 3, 5, 20
    index = torch.arange(frames, dtype=torch.float32)
    poses = index[None, :, None].repeat(1, 1, d)
    speech = 1000 + index[None, :, None].repeat(1, 1, a)
    cond, target = condition_windows(poses, speech, seqlen, lookahead)
    assert cond.shape == (1, frames - seqlen - lookahead, seqlen * d + 26 * a)
    for j in (0, 7, cond.shape[1] - 1):
        past = cond[0, j, : seqlen * d].reshape(seqlen, d)[:, 0]
        audio = cond[0, j, seqlen * d :].reshape(26, a)[:, 0]
        assert past.tolist() == list(range(j, j + seqlen))
        assert audio.tolist() == [1000 + k for k in range(j, j + 26)]
        assert target[0, j, 0].item() == j + seqlen
    assert ModelConfig().condition_dim == 927


def test_data_dropout_masks_whole_pose_frames_only():
    cond = torch.randn(64, 50, 5 * 4 + 7) + 5.0
    assert torch.equal(data_dropout(cond, 4, 5, 0.0), cond)
    out = data_dropout(cond, 4, 5, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(out[..., 20:], cond[..., 20:])  # speech untouched
    slots = out[..., :20].reshape(64, 50, 5, 4) == 0
    assert torch.all(slots.all(-1) == slots.any(-1))  # all dims of a frame dropped together
    keep = 1 - slots.all(-1).float().mean().item()
    assert abs(keep - 0.8) < 0.02


def test_denoiser_shape_zero_init_and_clear_errors():
    cfg = ModelConfig(lstm_hidden=16)
    net = EpsilonTheta(cfg)
    x, h = torch.randn(3, 1, 45), torch.randn(3, 16)
    out = net(x, torch.tensor([0, 50, 99]), h)
    assert out.shape == (3, 1, 45)
    assert torch.allclose(out, net.output_projection.bias.expand_as(out))  # zero weight: constant
    with pytest.raises(ValueError, match="dilation of 32"):
        EpsilonTheta(ModelConfig(pose_dim=24))
    with pytest.raises(ValueError, match="exceeds the 500-step table"):
        EpsilonTheta(ModelConfig(diffusion_steps=600))


def test_changing_the_lstm_conditioning_changes_the_denoiser_output():
    model = tiny_model()
    cond = torch.randn(2, 6, TINY.model.condition_dim)
    h1, _ = model.encode(cond)
    other = cond.clone()
    other[..., -TINY.model.audio_dim :] += 1.0  # different speech in the window
    h2, _ = model.encode(other)
    x, step = torch.randn(12, 1, 45), torch.full((12,), 3)
    out1 = model.denoise(x, step, h1.reshape(12, -1))
    out2 = model.denoise(x, step, h2.reshape(12, -1))
    assert (out1 - out2).abs().max() > 1e-4


def test_stateful_lstm_steps_equal_the_sequence_call():
    model = tiny_model()
    cond = torch.randn(2, 7, TINY.model.condition_dim)
    full, _ = model.encode(cond)
    state, steps = None, []
    for t in range(7):
        h, state = model.encode(cond[:, t : t + 1], state)
        steps.append(h)
    torch.testing.assert_close(torch.cat(steps, 1), full)


def test_paper_preset_has_the_official_sizes():
    model = DiffMotion(PRESETS["paper"].model)
    assert sum(p.numel() for p in model.denoise_fn.parameters()) == 19686  # spec: ~19.7 k
    assert abs(sum(p.numel() for p in model.parameters()) - 5.07e6) < 0.01e6  # spec: ~5.07 M
    assert model.rnn.input_size == 927 and model.rnn.num_layers == 2 and model.rnn.dropout == 0.2


def test_quadratic_schedule_matches_the_paper():
    schedule = DiffMotion(ModelConfig(lstm_hidden=8)).schedule
    assert len(schedule) == 100
    assert np.isclose(schedule.betas[0], 1e-4) and np.isclose(schedule.betas[-1], 0.1)
    assert abs(schedule.alphas_cumprod[-1] - 0.0282) < 5e-4


def test_generation_is_seeded_and_has_the_speech_length():
    model = tiny_model()
    speech = torch.randn(2, 13, TINY.model.audio_dim)
    cfg = SamplingConfig(steps=4)
    a = generate(model, speech, cfg, generator=torch.Generator().manual_seed(1))
    b = generate(model, speech, cfg, generator=torch.Generator().manual_seed(1))
    c = generate(model, speech, cfg, generator=torch.Generator().manual_seed(2))
    assert a.shape == (2, 13, 45)
    assert torch.equal(a, b) and not torch.equal(a, c)
    median_of_one = dataclasses.replace(cfg, reduce="median")
    assert torch.equal(
        generate(model, speech, median_of_one, generator=torch.Generator().manual_seed(1)), a
    )


def test_each_pose_is_fed_back_and_official_alignment_is_one_frame_late():
    model = tiny_model()
    m = TINY.model
    speech = torch.arange(9, dtype=torch.float32)[None, :, None].repeat(1, 1, m.audio_dim)
    rows = []
    original = model.encode
    model.encode = lambda cond, state=None: (rows.append(cond.clone()), original(cond, state))[1]
    poses = generate(
        model, speech, SamplingConfig(steps=3), generator=torch.Generator().manual_seed(0)
    )
    previous_slot = slice((m.seqlen - 1) * m.pose_dim, m.seqlen * m.pose_dim)
    for t in range(1, 9):
        torch.testing.assert_close(rows[t][0, 0, previous_slot], poses[0, t - 1])
    first_speech = lambda row: row[0, 0, m.seqlen * m.pose_dim :: m.audio_dim]  # noqa: E731
    # training alignment: pose t sees speech t-seqlen .. t+lookahead (edges repeated)
    assert first_speech(rows[6]).tolist() == [
        max(0, min(8, k)) for k in range(1, 1 + m.speech_window)
    ]
    rows.clear()
    generate(
        model,
        speech,
        SamplingConfig(steps=3, alignment="official"),
        generator=torch.Generator().manual_seed(0),
    )
    assert len(rows) == 9 + 1  # the warm-up step
    assert first_speech(rows[1 + 6]).tolist() == [
        max(0, min(8, k)) for k in range(2, 2 + m.speech_window)
    ]


def test_invalid_sampling_choices_are_clear():
    model, speech = tiny_model(), torch.randn(1, 4, TINY.model.audio_dim)
    with pytest.raises(ValueError, match="set samples_per_frame=1"):
        generate(model, speech, SamplingConfig(samples_per_frame=3))
    with pytest.raises(ValueError, match="unknown reduce"):
        generate(model, speech, SamplingConfig(reduce="max"))


def test_tiny_training_lowers_the_loss(tmp_path):
    rng = np.random.default_rng(0)
    speech = rng.normal(size=(16, TINY.clip_frames, 27)).astype(np.float32)
    poses = np.repeat(np.tanh(speech[..., :1]), 45, axis=2) + 0.05 * rng.normal(
        size=(16, TINY.clip_frames, 45)
    )
    poses = poses.astype(np.float32)
    cfg = dataclasses.replace(TINY, steps=40, lr=1e-2)
    pose_stats, speech_stats = fit_statistics(poses, speech)
    cond, target = condition_windows(
        torch.as_tensor(pose_stats.transform(poses), dtype=torch.float32),
        torch.as_tensor(speech_stats.transform(speech), dtype=torch.float32),
        cfg.model.seqlen,
        cfg.model.lookahead,
    )

    def fixed_noise_loss(model):  # same timesteps and noise before and after training
        with torch.no_grad():
            return model.eval().loss(cond, target, torch.Generator().manual_seed(123)).item()

    torch.manual_seed(0)  # train_model() seeds the same way, so this is its initial model
    before = fixed_noise_loss(build_model(cfg, pose_stats, speech_stats))
    after = fixed_noise_loss(train_model(cfg, poses, speech, tmp_path, seed=0)[0])
    assert after < 0.95 * before


def test_killed_and_resumed_training_ends_with_the_same_weights(tmp_path):
    rng = np.random.default_rng(1)
    poses = rng.normal(size=(6, TINY.clip_frames, 45)).astype(np.float32)
    speech = rng.normal(size=(6, TINY.clip_frames, 27)).astype(np.float32)
    cfg = dataclasses.replace(TINY, steps=4, checkpoint_every=2, batch_size=4)
    straight, straight_result = train_model(cfg, poses, speech, tmp_path / "straight")
    train_model(dataclasses.replace(cfg, steps=2), poses, speech, tmp_path / "resumed")  # killed
    resumed, result = train_model(cfg, poses, speech, tmp_path / "resumed")
    assert result.step == 4
    assert result.losses == straight_result.losses  # the history comes back with the resume
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    reloaded, saved_cfg = load_model(tmp_path / "resumed")
    assert saved_cfg == cfg
    for a, b in zip(resumed.state_dict().values(), reloaded.state_dict().values()):
        assert torch.equal(a, b)
