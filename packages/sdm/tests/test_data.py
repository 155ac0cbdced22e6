import pytest
import torch

from diffrepro.sdm.data import HELD_OUT_PHOTOS, TRAIN_PHOTOS, photos, random_crops


def test_photos_are_resized_to_the_short_side():
    train, held_out = photos(TRAIN_PHOTOS[:2], 24), photos(HELD_OUT_PHOTOS, 24)
    assert [min(p.shape[1:]) for p in train + held_out] == [24] * 4
    assert all(p.shape[0] == 3 and p.min() >= -1 and p.max() <= 1 for p in train + held_out)


def test_random_crops_are_seeded_windows_of_the_images():
    image = torch.arange(3 * 10 * 12.0).reshape(3, 10, 12)
    crops = random_crops([image], 20, 4, torch.Generator().manual_seed(0))
    again = random_crops([image], 20, 4, torch.Generator().manual_seed(0))
    assert crops.shape == (20, 3, 4, 4) and torch.equal(crops, again)
    mirrored = crops[:, 0, 0, 0] > crops[:, 0, 0, 1]  # rows increase left to right unless flipped
    assert mirrored.any() and not mirrored.all()
    for crop in crops:
        crop = crop.flip(-1) if crop[0, 0, 0] > crop[0, 0, 1] else crop
        top, left = divmod(int(crop[0, 0, 0]), 12)
        assert torch.equal(crop, image[:, top : top + 4, left : left + 4])
    plain = random_crops([image], 20, 4, torch.Generator().manual_seed(0), flip=False)
    assert bool((plain[:, 0, 0, 0] < plain[:, 0, 0, 1]).all())
    with pytest.raises(ValueError, match="cannot crop 11x11"):
        random_crops([image], 1, 11, torch.Generator())
