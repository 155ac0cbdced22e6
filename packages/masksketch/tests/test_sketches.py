import numpy as np
import pytest
import torch
from PIL import Image

from diffrepro.masksketch.sketches import edge_sketch, emoji_sketches, load_sketch


def square_image(size=64):
    x = torch.ones(1, 3, size, size)
    x[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0.0
    return x


@pytest.mark.parametrize("method", ["canny", "sobel"])
def test_edge_sketch_draws_dark_strokes_on_white_at_the_edges(method):
    sketch = edge_sketch(square_image(), 16, method)
    assert sketch.shape == (1, 3, 16, 16)
    assert set(sketch.unique().tolist()) <= {0.0, 1.0}
    grey = sketch[0, 0]
    assert float(grey[0].min()) == 1.0 and float(grey[8, 8]) == 1.0  # border and interior white
    assert float(grey[4, 4:12].min()) == 0.0  # the square's top edge is drawn


def test_edge_sketch_rejects_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="multiples of 24"):
        edge_sketch(square_image(64), 24)
    with pytest.raises(ValueError, match="canny or sobel"):
        edge_sketch(square_image(64), 16, "laplace")


def test_emoji_sketches_come_from_the_held_out_split():
    from diffrepro.core import emoji

    sketches, images, alpha, labels = emoji_sketches(16, scale=2, limit=3)
    assert sketches.shape == images.shape == (3, 3, 16, 16) and alpha.shape == (3, 1, 16, 16)
    assert labels.tolist() == [e.label for e in emoji.select("heldout")[:3]]
    assert all(e.heldout for e in emoji.select("heldout")[:3])
    assert 0 < float(sketches.mean()) < 1


def test_load_sketch_resizes_square_images_and_rejects_others(tmp_path):
    Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(tmp_path / "s.png")
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / "r.png")
    s = load_sketch(tmp_path / "s.png", 16)
    assert s.shape == (1, 3, 16, 16) and float(s.min()) == 1.0
    with pytest.raises(ValueError, match="must be square"):
        load_sketch(tmp_path / "r.png", 16)
