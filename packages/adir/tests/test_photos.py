"""The out-of-domain photo crops: test crops disjoint from the corpus, deterministic."""

import pytest
import torch

from diffrepro.adir.demo import DEMO
from diffrepro.adir.photos import boxes_overlap, photo_crops
from diffrepro.core.data import SKIMAGE_PHOTOS, sample_photos


def fake_photos():
    g = torch.Generator().manual_seed(0)
    return [(f"p{i}", torch.rand(3, 64, 80 + 8 * i, generator=g) * 2 - 1) for i in range(3)]


def check_disjoint(crops, size, margin):
    for box in crops.corpus_boxes:
        for test in crops.test_boxes:
            assert not boxes_overlap(box, test, size)
            if box[0] == test[0]:
                assert max(abs(box[1] - test[1]), abs(box[2] - test[2])) >= size + margin
    corpus = {c.numpy().tobytes() for c in crops.corpus}
    assert not any(t.numpy().tobytes() in corpus for t in crops.test)


def test_fake_photo_crops_are_disjoint_deterministic_and_cut_where_they_say():
    photos = fake_photos()
    crops = photo_crops(photos, ["p0", "p2"], size=16, scale=64, stride=8, margin=4)
    again = photo_crops(fake_photos(), ["p0", "p2"], size=16, scale=64, stride=8, margin=4)
    assert torch.equal(crops.test, again.test) and torch.equal(crops.corpus, again.corpus)
    assert crops.corpus_boxes == again.corpus_boxes
    check_disjoint(crops, 16, 4)
    assert crops.test_names == ["p0 (centre)", "p2 (centre)"]
    assert set(crops.corpus_sources) == {"p0", "p1", "p2"}  # test photos add their other regions
    assert crops.corpus_sources.count("p1") == 7 * 10  # the whole grid of a non-test photo
    images = dict(photos)
    for crop, (name, top, left) in zip(crops.corpus, crops.corpus_boxes):
        assert torch.equal(crop, images[name][:, top : top + 16, left : left + 16])
    assert crops.test_boxes[0] == ("p0", 24, 32)  # the centre crop


def test_photo_crops_reject_unknown_test_photos_and_an_empty_corpus():
    with pytest.raises(ValueError, match="not among"):
        photo_crops(fake_photos(), ["nope"], size=16, scale=64)
    with pytest.raises(ValueError, match="no corpus crop"):
        photo_crops(fake_photos()[:1], ["p0"], size=16, scale=64, stride=8, margin=32)


def test_the_demo_photo_corpus_is_disjoint_and_deterministic():
    pytest.importorskip("skimage")
    cfg = DEMO
    kwargs = dict(size=32, scale=cfg.photo_scale, stride=cfg.photo_stride, margin=cfg.photo_margin)
    crops = photo_crops(list(zip(SKIMAGE_PHOTOS, sample_photos())), cfg.test_photos, **kwargs)
    again = photo_crops(list(zip(SKIMAGE_PHOTOS, sample_photos())), cfg.test_photos, **kwargs)
    assert torch.equal(crops.corpus, again.corpus) and torch.equal(crops.test, again.test)
    check_disjoint(crops, 32, cfg.photo_margin)
    assert crops.test.shape == (3, 3, 32, 32) and len(crops.corpus) == 414
