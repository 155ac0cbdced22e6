"""The zoo: cache keys, stale / corrupt / interrupted builds, formats of the saved models,
determinism, and the ``diffrepro zoo`` command. Tiny entries only (never the real models)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from diffrepro.core import zoo
from diffrepro.core.cli import main
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.models.unet import UNetConfig, load_guided_diffusion
from diffrepro.core.zoo import cache
from diffrepro.core.zoo.tiny import tiny_entries

TINY = {e.name: e for e in tiny_entries()}


@pytest.fixture(autouse=True)
def _registered(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for entry in TINY.values():
        zoo.register(entry, replace=True)
    yield
    for name in TINY:
        zoo.unregister(name)


@pytest.fixture(scope="module")
def built_root(tmp_path_factory):
    """One build of every tiny entry, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("zoo")
    for entry in TINY.values():
        zoo.register(entry, replace=True)
    for name in TINY:
        zoo.path(name, root=root)
    return root


def _weights(folder):
    """Copies of every weights file's tensors (load_file may map the file lazily)."""
    return {
        str(p.relative_to(folder)): {k: v.clone() for k, v in load_file(str(p)).items()}
        for p in sorted(folder.rglob("*.safetensors"))
    }


def test_key_changes_with_config_recipe_and_requirements():
    vae = TINY["tiny-emoji-vae"]
    t2i = TINY["tiny-emoji-t2i"]
    assert vae.key() == dataclasses.replace(vae).key()
    other_recipe = dataclasses.replace(vae, recipe=dataclasses.replace(vae.recipe, steps=3))
    other_config = dataclasses.replace(
        vae, config=dataclasses.replace(vae.config, latent_channels=3)
    )
    other_data = dataclasses.replace(vae, data_version="openmoji-0-r0")
    keys = {vae.key(), other_recipe.key(), other_config.key(), other_data.key()}
    assert len(keys) == 4
    before = t2i.key()
    zoo.register(other_recipe, replace=True)  # the VAE the t2i entry builds on changes
    assert t2i.key() != before


def test_builds_are_cached_and_reloaded(built_root, capsys):
    folder = zoo.path("tiny-emoji-judge", root=built_root)
    stamp = (folder / cache.MANIFEST).stat().st_mtime_ns
    assert zoo.path("tiny-emoji-judge", root=built_root, build=False) == folder
    assert (folder / cache.MANIFEST).stat().st_mtime_ns == stamp  # not rebuilt
    manifest = cache.read_manifest(folder)
    assert manifest["key"] == TINY["tiny-emoji-judge"].key()
    assert "judge.safetensors" in manifest["files"]
    card = zoo.card("tiny-emoji-judge", root=built_root)
    assert "train_seconds" in card and "Honest limits" in card


def test_changed_entry_is_rebuilt_and_other_builds_are_kept_until_pruned(tmp_path, capsys):
    judge = TINY["tiny-emoji-judge"]
    old = zoo.path(judge, root=tmp_path)
    changed = dataclasses.replace(judge, recipe=dataclasses.replace(judge.recipe, lr=1e-3))
    zoo.register(changed, replace=True)
    new = zoo.path("tiny-emoji-judge", root=tmp_path)
    assert new != old and old.is_dir() and new.is_dir()  # another checkout may still use `old`
    err = capsys.readouterr().err
    assert "other builds kept" in err and old.name in err
    assert cache.prune([zoo.get("tiny-emoji-judge")], root=tmp_path) == [old]
    assert not old.exists() and new.is_dir() and cache.built(changed, tmp_path) == new
    assert "zoo tiny-emoji-judge: step 2/2 (100%), loss" in err and " ETA " in err  # progress lines


@pytest.mark.parametrize("damage", ["truncate", "edit", "manifest"])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, capsys, damage):
    entry = TINY["tiny-emoji-judge"]
    folder = zoo.path(entry, root=tmp_path)
    weights = folder / "judge.safetensors"
    original = _weights(folder)
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "edit":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        (folder / cache.MANIFEST).write_text("{")
    assert cache.built(entry, tmp_path) is None
    with pytest.raises(FileNotFoundError, match="zoo build tiny-emoji-judge"):
        zoo.load(entry, root=tmp_path, build=False)
    zoo.load(entry, root=tmp_path)
    assert "unusable" in capsys.readouterr().err
    rebuilt = _weights(folder)
    name = "judge.safetensors"
    assert all(torch.equal(original[name][k], v) for k, v in rebuilt[name].items())


def test_interrupted_build_leaves_nothing_that_loads(tmp_path):
    entry = TINY["tiny-emoji-judge"]

    def crash(entry_, ctx):
        entry.build(entry_, ctx)  # writes the weights, then dies before finishing
        raise KeyboardInterrupt

    broken = dataclasses.replace(entry, build=crash)
    with pytest.raises(KeyboardInterrupt):
        zoo.path(broken, root=tmp_path)
    assert cache.built(entry, tmp_path) is None
    assert not cache.entry_folder(entry, tmp_path).exists()
    assert not list(tmp_path.glob(".*.tmp-*"))
    with pytest.raises(FileNotFoundError):
        zoo.load(entry, root=tmp_path, build=False)


def test_non_finite_weights_are_never_cached(tmp_path):
    entry = TINY["tiny-emoji-judge"]

    def poison(entry_, ctx):
        facts = entry.build(entry_, ctx)
        path = ctx.out_dir / "judge.safetensors"
        state = load_file(str(path))
        first = next(iter(state))
        state[first] = torch.full_like(state[first], float("nan"))
        from safetensors.torch import save_file

        save_file(state, str(path))
        return facts

    with pytest.raises(FloatingPointError, match="not cached"):
        zoo.path(dataclasses.replace(entry, build=poison), root=tmp_path)
    assert cache.built(entry, tmp_path) is None


def test_non_finite_loss_stops_training(tmp_path):
    entry = TINY["tiny-emoji-judge"]
    bad = dataclasses.replace(
        entry, recipe=dataclasses.replace(entry.recipe, max_noise=float("inf"))
    )  # infinite augmentation noise: the first loss is not finite
    with pytest.raises(FloatingPointError):
        zoo.path(bad, root=tmp_path)
    assert not any(p.name.startswith("tiny-emoji-judge-") for p in tmp_path.iterdir())


def test_same_seed_builds_identical_weights(tmp_path, built_root):
    entry = TINY["tiny-emoji-ddpm"]
    first = _weights(zoo.path(entry, root=built_root))
    second = _weights(zoo.path(entry, root=tmp_path))
    assert first.keys() == second.keys()
    for name in first:
        assert all(torch.equal(first[name][k], second[name][k]) for k in first[name])
    reseeded = tiny_entries(seed=1)[3]
    third = _weights(zoo.path(reseeded, root=tmp_path / "other"))
    assert not all(torch.equal(first[n][k], third[n][k]) for n in first for k in first[n])


def test_t2i_folder_loads_through_stable_diffusion_like_the_in_memory_model(built_root):
    folder = zoo.path("tiny-emoji-t2i", root=built_root)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    sd = StableDiffusion.load(folder)
    loaded = zoo.load("tiny-emoji-t2i", root=built_root)
    weights = _weights(folder)
    for key, value in sd.unet.state_dict().items():
        assert torch.equal(value, weights["unet/diffusion_pytorch_model.safetensors"][key])
    ids = sd.tokenizer(["an emoji of a dog face"])
    assert sd.tokenizer.decode(ids[0]) == "an emoji of a dog face"
    g = [torch.Generator().manual_seed(3)]
    z1 = sd.sample(["an emoji of a dog face"], num_steps=3, guidance_scale=3.0, generator=g)
    g = [torch.Generator().manual_seed(3)]
    z2 = loaded.sample(["an emoji of a dog face"], num_steps=3, guidance_scale=3.0, generator=g)
    assert torch.equal(z1, z2) and torch.isfinite(z1).all()
    assert sd.decode_latents(z1).shape == (1, 3, 16, 16)
    # the VAE's measured scaling factor is stored in the folder
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    assert vae_config["scaling_factor"] != 1.0
    # pseudo-words can be added (Textual Inversion)
    (new_id,) = sd.tokenizer.add_tokens(["<sks>"])
    assert sd.tokenizer.encode("a <sks> emoji")[2] == new_id


def test_pixel_ddpm_opens_with_the_guided_diffusion_loader(built_root):
    for name in ("tiny-emoji-ddpm", "tiny-emoji-ddpm-cond"):
        folder = zoo.path(name, root=built_root)
        flags = json.loads((folder / "model_flags.json").read_text())
        official = load_guided_diffusion(folder / "model.safetensors", UNetConfig(**flags))
        bundle = zoo.load(name, root=built_root)
        x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        t = torch.tensor([10, 500])
        y = torch.tensor([0, 5]) if flags["num_classes"] else None
        assert torch.equal(official(x, t, y), bundle.unet(x, t, y))
        diffusion = json.loads((folder / "diffusion_flags.json").read_text())
        assert diffusion == {
            "diffusion_steps": 1000,
            "learn_sigma": False,
            "noise_schedule": "linear",
            "predict_xstart": False,
        }
        labels = torch.tensor([1, 2]) if flags["num_classes"] else None
        samples = bundle.sample(2, labels=labels, num_steps=2)
        assert samples.shape == (2, 3, 16, 16) and samples.abs().max() <= 1


def test_ddpm_sample_needs_labels_exactly_when_conditional(built_root):
    cond = zoo.load("tiny-emoji-ddpm-cond", root=built_root)
    with pytest.raises(ValueError, match="labels"):
        cond.sample(1, num_steps=2)
    uncond = zoo.load("tiny-emoji-ddpm", root=built_root)
    with pytest.raises(ValueError, match="labels"):
        uncond.sample(1, labels=torch.tensor([0]), num_steps=2)


def test_judge_measures(built_root):
    from diffrepro.core.zoo.judge import emoji_fd, retrieval_accuracy

    judge = zoo.load("tiny-emoji-judge", root=built_root)
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    assert judge.identity_logits(x).shape == (6, 1457)
    assert judge.class_logits(x).shape == (6, 8)
    assert judge.identify(x, k=5).shape == (6, 5)
    top = judge.identify(x, k=1)[:, 0]
    acc = retrieval_accuracy(judge, x, top)
    assert acc[1] == 1.0 and acc[5] == 1.0
    assert emoji_fd(x, x, judge) == pytest.approx(0.0, abs=1e-3)
    assert emoji_fd(x, -x, judge) > 0
    with pytest.raises(ValueError, match="at least 2"):
        emoji_fd(x[:1], x, judge)


def test_unknown_and_duplicate_entries():
    with pytest.raises(ValueError, match="unknown zoo entry"):
        zoo.get("no-such-model")
    with pytest.raises(ValueError, match="already registered"):
        zoo.register(TINY["tiny-emoji-vae"])
    assert {"emoji-t2i", "emoji-judge", "emoji-ddpm", "emoji-ddpm-cond", "emoji-vae"} <= set(
        zoo.entries()
    )


def test_food_t2i_trains_on_food_only_and_says_so():
    from diffrepro.core.emoji import COARSE_CLASSES
    from diffrepro.core.zoo.t2i import training_emoji

    food, broad = zoo.get("emoji-t2i-food"), zoo.get("emoji-t2i")
    assert food.key() != broad.key() and food.config == broad.config
    items, x = training_emoji(8, food.recipe.classes)
    assert {COARSE_CLASSES[e.label] for e in items} == {"food"} and len(x) == len(items)
    assert 50 < len(items) < len(training_emoji(8, broad.recipe.classes)[0])
    assert "classes food (" in food.card and "face, animal" in broad.card
    with pytest.raises(ValueError, match="unknown coarse classes"):
        training_emoji(8, ("foods",))


def test_cli_list_path_card_and_errors(tmp_path, monkeypatch, capsys, built_root):
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(built_root))
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny-emoji-t2i" in out and "built" in out
    assert main(["zoo", "path", "tiny-emoji-judge"]) == 0
    assert capsys.readouterr().out.strip() == str(zoo.path("tiny-emoji-judge", build=False))
    assert main(["zoo", "card", "tiny-emoji-judge"]) == 0
    assert capsys.readouterr().out.startswith("# tiny-emoji-judge")
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path / "empty"))
    for argv, text in (
        (["zoo", "path", "tiny-emoji-judge"], "not built"),
        (["zoo", "card", "nope"], "unknown zoo entry"),
        (["zoo", "build", "tiny-emoji-judge", "nope"], "unknown zoo entry"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0]
    assert not (tmp_path / "empty").exists()  # a failed command builds nothing


def test_cli_build(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path))
    assert main(["zoo", "build", "tiny-emoji-ddpm"]) == 0
    folder = capsys.readouterr().out.strip()
    assert folder.endswith(TINY["tiny-emoji-ddpm"].key())
    assert cache.built(TINY["tiny-emoji-ddpm"], tmp_path) is not None
