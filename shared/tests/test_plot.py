"""The Pillow line plots: panels are drawn, tiled and written; non-finite data is refused."""

import pytest
from PIL import Image

from diffrepro.core.plot import line_panel, save_panels


def test_panels_tile_into_one_png(tmp_path):
    series = {"a": [(0, 1.0), (10, 2.0)], "b": [(0, 0.5), (10, 0.25)]}
    bands = {"a": [(0, 0.8, 1.2), (10, 1.5, 2.5)]}
    panel = line_panel(series, bands=bands, title="t", size=(200, 150))
    assert panel.size == (200, 150)
    assert len(set(panel.getdata())) > 3  # something was drawn
    path = save_panels([[panel, panel], [panel]], tmp_path / "fig.png")
    with Image.open(path) as img:
        assert img.size == (400, 300)


def test_non_finite_points_are_refused():
    with pytest.raises(ValueError, match="finite"):
        line_panel({"a": [(0, float("nan"))]})
    with pytest.raises(ValueError, match="at least one"):
        save_panels([], "x.png")
