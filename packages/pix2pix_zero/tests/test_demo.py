"""The demo end to end on the core zoo's tiny entries (16 px, 2 training steps): the zoo code
path of the real demo, with numbers that mean nothing."""

import dataclasses
import json

import pytest

from diffrepro.core import zoo
from diffrepro.core.zoo.tiny import tiny_entries
from diffrepro.pix2pix_zero.config import PRESETS
from diffrepro.pix2pix_zero.demo import ROWS, _zoo_assets, run_demo
from diffrepro.pix2pix_zero.guidance import GuidanceConfig
from diffrepro.pix2pix_zero.inversion import InversionConfig


@pytest.mark.slow
def test_demo_on_tiny_zoo_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path / "zoo"))
    for entry in tiny_entries():
        zoo.register(entry, replace=True)
    cfg = dataclasses.replace(
        PRESETS["tiny"], image_size=16, inversion=InversionConfig(num_steps=3),
        edit=GuidanceConfig(num_steps=3),
    )  # fmt: skip
    assets = _zoo_assets(
        cfg, "cpu", model="tiny-emoji-t2i", judge_name="tiny-emoji-judge",
        tasks=("cat_face2dog_face",),
    )  # fmt: skip
    result = run_demo(tmp_path / "run", cfg, assets)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rows = metrics["tasks"]["cat_face2dog_face"]
    assert set(rows) == {"recon", *ROWS}
    for entry in rows.values():
        assert entry["edit_accuracy"] in (0.0, 1.0)
        assert entry["structure_distance"] >= 0 and entry["background_distance"] >= 0
    assert (tmp_path / "run" / "figure.png").is_file() and result.report.is_file()
    assert len(result.headline) == len(ROWS)
