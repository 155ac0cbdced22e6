"""The bad-input suite: every command, every kind of bad input (DESIGN.md §4-5).

Each case must exit with 2, print exactly one line naming the problem (no traceback, no
"internal error") and leave the disk as it was: the case folder (the working directory, where
default outputs go, and the cache home) is hashed before and after. ``{tmp}`` is the case
folder, ``{a}`` the shared folder of prepared inputs (conftest.py). Cases run in-process
through each command's ``main(argv)``; a few run as real subprocesses at the end.

New paper packages add their cases here (a list named after the package, added to ``SUITES``),
using :class:`diffrepro.core.testing.BadInput` (see docs/adding-a-paper.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffrepro.core.testing import (
    BadInput,
    assert_bad_input_result,
    check_bad_input,
    snapshot,
)


def copy(source: str, name: str | None = None):
    """``setup``: copy the prepared ``{a}/source`` into the case folder."""

    def setup(tmp: Path, assets: Path) -> Path:
        target = tmp / (name or Path(source).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if (assets / source).is_dir():
            shutil.copytree(assets / source, target)
        else:
            shutil.copy(assets / source, target)
        return target

    return setup


def broken_run(breakage: str):
    """``setup``: the ADIR run copied to ``{tmp}/run`` and then broken in one way."""

    def setup(tmp: Path, assets: Path) -> None:
        run = copy("adir_run", "run")(tmp, assets)
        step = run / "checkpoints" / "step_0000001"
        if breakage == "corrupt_state":
            (step / "train_state.pt").write_bytes(b"\x80\x04garbage")
        elif breakage == "pickled_state":
            torch.save({"optimizer": argparse_namespace(), "step": 1}, step / "train_state.pt")
        elif breakage == "corrupt_weights":
            (step / "model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
        elif breakage == "missing_step":
            (run / "checkpoints" / "latest").write_text("step_0000099")
        elif breakage == "bad_pointer":
            (run / "checkpoints" / "latest").write_text("../../elsewhere")

    return setup


def argparse_namespace():
    import argparse

    return argparse.Namespace(a=1)  # not allowed by weights-only unpickling


ADIR_CKPT = ["--checkpoint", "{a}/adir_run", "--preset", "tiny"]
RESTORE = ["restore", *ADIR_CKPT]
ADIR_TRAIN = ["train", "--data", "{a}/data", "--preset", "tiny"]

INDEX = ["index", "--corpus", "{a}/data", "--out", "{tmp}/i.npz", "--clip"]

ADIR = [
    BadInput("index CLIP with 0 heads", [*INDEX, "{a}/clip_heads0"], "clip_heads0.*config"),
    BadInput("index CLIP size 'four'", [*INDEX, "{a}/clip_four"], "clip_four.*config"),
    BadInput("index CLIP config a list", [*INDEX, "{a}/clip_list"], "clip_list.*JSON object"),
    BadInput("index CLIP weight_map a list", [*INDEX, "{a}/clip_weight_map"], "weight_map"),
    BadInput("train missing data", ["train", "--data", "{tmp}/nope"], "nope"),
    BadInput("train data is a file", ["train", "--data", "{a}/img32.png"], "img32.png"),
    BadInput("train empty data", ["train", "--data", "{a}/empty"], "no images.*empty"),
    BadInput("train betas one value", [*ADIR_TRAIN, "--set", "train.betas=0.9"], "betas"),
    BadInput("train lr nan", [*ADIR_TRAIN, "--set", "train.lr=nan"], "lr.*finite"),
    BadInput("train steps 0", [*ADIR_TRAIN, "--set", "train.steps=0"], "steps"),
    BadInput("train batch 0", [*ADIR_TRAIN, "--set", "train.batch_size=0"], "batch_size"),
    BadInput("train groups 0", [*ADIR_TRAIN, "--set", "unet.num_groups=0"], "num_groups"),
    BadInput("train unknown field", [*ADIR_TRAIN, "--set", "nosuch=1"], "nosuch"),
    BadInput("train --set without =", [*ADIR_TRAIN, "--set", "steps"], "key=value"),
    BadInput("train bad sample_steps", [*ADIR_TRAIN, "--set", "sample_steps=0"], "sample_steps"),
    BadInput("train unknown preset", ["train", "--data", "{a}/data", "--preset", "x"], "preset"),
    BadInput("train seed overflow", [*ADIR_TRAIN, "--seed", "99999999999999999999"], "seed"),
    BadInput("train negative seed", [*ADIR_TRAIN, "--seed", "-1"], "seed"),
    BadInput("train bad device", [*ADIR_TRAIN, "--device", "tpu"], "device"),
    BadInput(
        "train --no-resume over an earlier run",
        [*ADIR_TRAIN, "--no-resume", "--out", "{tmp}/run"],
        "earlier run",
        setup=copy("adir_run", "run"),
    ),
    BadInput(
        "resume from a corrupt train_state.pt",
        [*ADIR_TRAIN, "--out", "{tmp}/run"],
        "train_state.pt",
        setup=broken_run("corrupt_state"),
    ),
    BadInput(
        "resume from a pickled train_state.pt",
        [*ADIR_TRAIN, "--out", "{tmp}/run"],
        "train_state.pt",
        setup=broken_run("pickled_state"),
    ),
    BadInput(
        "resume from corrupt weights",
        [*ADIR_TRAIN, "--out", "{tmp}/run"],
        "model.safetensors",
        setup=broken_run("corrupt_weights"),
    ),
    BadInput(
        "latest names a missing step",
        [*ADIR_TRAIN, "--out", "{tmp}/run"],
        "step_0000099",
        setup=broken_run("missing_step"),
    ),
    BadInput(
        "latest points outside the run",
        [*ADIR_TRAIN, "--out", "{tmp}/run"],
        "latest",
        setup=broken_run("bad_pointer"),
    ),
    BadInput(
        "restore without checkpoint",
        ["restore", "--task", "sr2", "--input", "{a}/img16.png"],
        "--checkpoint",
    ),
    BadInput(
        "restore missing checkpoint",
        ["restore", "--task", "sr2", "--input", "{a}/img16.png", "--checkpoint", "{tmp}/w.pt"],
        "w.pt",
    ),
    BadInput(
        "restore metadata config is a list",
        ["restore", "--task", "sr2", "--input", "{a}/img8.png"]
        + ["--checkpoint", "{a}/meta_list.safetensors"],
        "meta_list.*JSON object",
    ),
    BadInput(
        "restore broken metadata JSON",
        ["restore", "--task", "sr2", "--input", "{a}/img8.png"]
        + ["--checkpoint", "{a}/meta_broken.safetensors"],
        "meta_broken.*JSON",
    ),
    BadInput(
        "restore with a VIDM run",
        ["restore", "--task", "sr2", "--input", "{a}/img8.png"]
        + ["--checkpoint", "{a}/vidm_run/motion"],
        "vidm",
    ),
    BadInput(
        "restore corrupt safetensors",
        ["restore", "--task", "sr2", "--input", "{a}/img8.png"]
        + ["--checkpoint", "{a}/corrupt.safetensors"],
        "corrupt.safetensors",
    ),
    BadInput(
        "restore garbage pickle",
        ["restore", "--task", "sr2", "--input", "{a}/img8.png", "--checkpoint", "{a}/garbage.pt"],
        "garbage.pt",
    ),
    BadInput(
        "restore unsupported weights format",
        ["restore", "--task", "sr2", "--input", "{a}/img8.png"]
        + ["--checkpoint", "{a}/weights.txt"],
        "weights.txt",
    ),
    BadInput(
        "restore --size 0",
        [*RESTORE, "--task", "sr2", "--clean", "{a}/img16.png", "--size", "0"],
        "--size",
    ),
    BadInput(
        "restore --size -3",
        [*RESTORE, "--task", "sr2", "--clean", "{a}/img16.png", "--size", "-3"],
        "--size",
    ),
    BadInput(
        "restore --size 5",
        [*RESTORE, "--task", "sr2", "--clean", "{a}/img16.png", "--size", "5"],
        "multiple of",
    ),
    BadInput(
        "restore --size with --input",
        [*RESTORE, "--task", "sr2", "--input", "{a}/img8.png", "--size", "16"],
        "--size",
    ),
    BadInput(
        "restore missing input", [*RESTORE, "--task", "sr2", "--input", "{tmp}/no.png"], "no.png"
    ),
    BadInput(
        "restore input not an image",
        [*RESTORE, "--task", "sr2", "--input", "{a}/notimage.png"],
        "notimage.png",
    ),
    BadInput(
        "restore non-square input",
        [*RESTORE, "--task", "sr2", "--input", "{a}/img31x32.png"],
        "square",
    ),
    BadInput(
        "restore 1x1 input",
        [*RESTORE, "--task", "denoise", "--input", "{a}/img1.png"],
        "multiple of",
    ),
    BadInput(
        "restore inpaint mask of another size",
        [*RESTORE, "--task", "inpaint_box", "--clean", "{a}/img16.png", "--mask", "{a}/mask8.png"],
        "mask8.png",
    ),
    BadInput(
        "restore inpaint mask all black",
        [*RESTORE, "--task", "inpaint_box", "--input", "{a}/img16.png"]
        + ["--mask", "{a}/mask_black16.png"],
        "mask_black16.png",
    ),
    BadInput(
        "restore inpaint without mask",
        [*RESTORE, "--task", "inpaint_box", "--input", "{a}/img16.png"],
        "--mask",
    ),
    BadInput(
        "restore mask for sr",
        [*RESTORE, "--task", "sr2", "--input", "{a}/img8.png", "--mask", "{a}/mask16.png"],
        "--mask",
    ),
    BadInput(
        "restore NaN kernel",
        [
            *RESTORE,
            "--task",
            "deblur_kernel",
            "--clean",
            "{a}/img16.png",
            "--kernel",
            "{a}/kernel_nan.npy",
        ],
        "kernel_nan.*non-finite",
    ),
    BadInput(
        "restore pickled kernel",
        [
            *RESTORE,
            "--task",
            "deblur_kernel",
            "--clean",
            "{a}/img16.png",
            "--kernel",
            "{a}/kernel_obj.npy",
        ],
        "kernel_obj.*pickle",
    ),
    BadInput(
        "restore 3-D kernel",
        [
            *RESTORE,
            "--task",
            "deblur_kernel",
            "--clean",
            "{a}/img16.png",
            "--kernel",
            "{a}/kernel_3d.npy",
        ],
        "2-D",
    ),
    BadInput(
        "restore negative kernel",
        [
            *RESTORE,
            "--task",
            "deblur_kernel",
            "--clean",
            "{a}/img16.png",
            "--kernel",
            "{a}/kernel_neg.npy",
        ],
        "non-negative",
    ),
    BadInput(
        "restore text kernel",
        [
            *RESTORE,
            "--task",
            "deblur_kernel",
            "--clean",
            "{a}/img16.png",
            "--kernel",
            "{a}/kernel.txt",
        ],
        "kernel.txt",
    ),
    BadInput(
        "restore deblur_kernel without kernel",
        [*RESTORE, "--task", "deblur_kernel", "--clean", "{a}/img16.png"],
        "--kernel",
    ),
    BadInput(
        "restore index is a torch zip",
        [*RESTORE, "--task", "sr2", "--clean", "{a}/img16.png", "--index", "{a}/torch_zip.npz"],
        "torch_zip.npz",
    ),
    BadInput(
        "restore missing index",
        [*RESTORE, "--task", "sr2", "--clean", "{a}/img16.png", "--index", "{tmp}/i.npz"],
        "i.npz",
    ),
    BadInput(
        "restore unknown task", [*RESTORE, "--task", "sr3", "--clean", "{a}/img16.png"], "sr3"
    ),
    BadInput("index missing corpus", ["index", "--corpus", "{tmp}/nope"], "nope"),
    BadInput(
        "index --image-size 0",
        ["index", "--corpus", "{a}/data", "--image-size", "0"],
        "--image-size",
    ),
    BadInput(
        "index --out is a folder", ["index", "--corpus", "{a}/data", "--out", "{tmp}"], "folder"
    ),
    BadInput("demo bad seed", ["demo", "--seed", "x"], "--seed"),
    BadInput("demo on a missing GPU", ["demo", "--device", "cuda:7"], "cuda:7"),
    BadInput("no command", [], "COMMAND"),
]

SDM_CKPT = ["--checkpoint", "{a}/sdm_generator.safetensors"]
SDM_TRAIN = ["train", "--data", "{a}/data", "--preset", "tiny", "--out", "{tmp}/run"]
SDM = [
    BadInput("train missing data", ["train", "--data", "{tmp}/nope"], "nope"),
    BadInput("train batch 0", [*SDM_TRAIN, "--set", "train.batch_size=0"], "batch_size"),
    BadInput("train steps 0", [*SDM_TRAIN, "--set", "train.steps=0"], "steps"),
    BadInput("train betas one value", [*SDM_TRAIN, "--set", "train.betas=1"], "betas"),
    BadInput("train inf weight", [*SDM_TRAIN, "--set", "train.adv_weight=inf"], "adv_weight"),
    BadInput(
        "train images too small",
        ["train", "--data", "{a}/data_small", "--preset", "tiny", "--out", "{tmp}/run"],
        "smaller",
    ),
    BadInput(
        "train over a trained generator",
        [*SDM_TRAIN[:-1], "{tmp}/run"],
        "already holds",
        setup=copy("sdm_generator.safetensors", "run/generator_ema.safetensors"),
    ),
    BadInput(
        "train init from another paper",
        [*SDM_TRAIN, "--checkpoint", "{a}/adir_model.safetensors"],
        "adir",
    ),
    BadInput("inpaint missing input", ["inpaint", "--input", "{tmp}/x.png", *SDM_CKPT], "x.png"),
    BadInput(
        "inpaint input of another size", ["inpaint", "--input", "{a}/img32.png", *SDM_CKPT], "16"
    ),
    BadInput(
        "inpaint mask of another size",
        ["inpaint", "--input", "{a}/img16.png", "--mask", "{a}/mask8.png", *SDM_CKPT],
        "mask8.png",
    ),
    BadInput(
        "inpaint mask not an image",
        ["inpaint", "--input", "{a}/img16.png", "--mask", "{a}/notimage.png", *SDM_CKPT],
        "notimage.png",
    ),
    BadInput(
        "inpaint mask without hole",
        ["inpaint", "--input", "{a}/img16.png", "--mask", "{a}/mask_white16.png", *SDM_CKPT],
        "no hole",
    ),
    BadInput(
        "inpaint adir checkpoint",
        ["inpaint", "--input", "{a}/img16.png", "--checkpoint", "{a}/adir_model.safetensors"],
        "adir.*ADIRConfig",
    ),
    BadInput(
        "inpaint metadata list",
        ["inpaint", "--input", "{a}/img16.png", "--checkpoint", "{a}/meta_list.safetensors"],
        "JSON object",
    ),
    BadInput(
        "inpaint --preset with --checkpoint",
        ["inpaint", "--input", "{a}/img16.png", "--preset", "tiny", *SDM_CKPT],
        "--preset and --checkpoint",
    ),
    BadInput(
        "inpaint no model at all",
        ["inpaint", "--input", "{a}/img16.png", "--preset", "tiny"],
        "without --checkpoint",
    ),
    BadInput(
        "inpaint bad mask kind",
        ["inpaint", "--input", "{a}/img16.png", "--mask-kind", "huge"],
        "mask-kind",
    ),
    BadInput(
        "inpaint decode steps 0",
        ["inpaint", "--input", "{a}/img16.png", *SDM_CKPT, "--set", "decode.steps=0"],
        "steps",
    ),
]

VIDM_RUN = ["--checkpoint", "{a}/vidm_run"]
VIDM = [
    BadInput("train unknown stage", ["train", "--stage", "audio"], "stage"),
    BadInput("train with --checkpoint", ["train", "--stage", "content", *VIDM_RUN], "--checkpoint"),
    BadInput("train steps 0", ["train", "--stage", "content", "--set", "train.steps=0"], "steps"),
    BadInput(
        "train torchscript flow (never loaded)",
        ["train", "--stage", "motion", "--preset", "tiny", "--out", "{tmp}/run"]
        + ["--set", "flow.training=torchscript"],
        "unknown flow source",
    ),
    BadInput("sample --frames 0", ["sample", *VIDM_RUN, "--frames", "0"], "--frames"),
    BadInput("sample --num 0", ["sample", *VIDM_RUN, "--num", "0"], "--num"),
    BadInput("sample --frames -2", ["sample", *VIDM_RUN, "--frames", "-2"], "--frames"),
    BadInput("sample missing run", ["sample", "--checkpoint", "{tmp}/none"], "none"),
    BadInput(
        "sample run without checkpoints",
        ["sample", "--checkpoint", "{a}/empty"],
        "no motion checkpoint",
    ),
    BadInput(
        "sample --preset with --checkpoint", ["sample", *VIDM_RUN, "--preset", "tiny"], "--preset"
    ),
    BadInput(
        "sample --first with --num",
        ["sample", *VIDM_RUN, "--first", "{a}/img16.png", "--num", "2"],
        "--first and --num",
    ),
    BadInput(
        "sample missing first frame", ["sample", *VIDM_RUN, "--first", "{tmp}/f.png"], "f.png"
    ),
    BadInput("sample an ADIR run", ["sample", "--checkpoint", "{a}/adir_run"], "adir"),
    BadInput(
        "sample torchscript flow (never loaded)",
        ["sample", *VIDM_RUN, "--set", "flow.generation=torchscript"],
        "unknown flow source",
    ),
    BadInput(
        "sample negative flow radius", ["sample", *VIDM_RUN, "--set", "flow.radius=-1"], "radius"
    ),
]

DM_SAMPLE = ["sample", "--checkpoint", "{a}/dm_run", "--out", "{tmp}/g.bvh"]
DIFFMOTION = [
    BadInput("sample missing audio", [*DM_SAMPLE, "--audio", "{tmp}/a.wav"], "a.wav"),
    BadInput("sample truncated WAV", [*DM_SAMPLE, "--audio", "{a}/truncated.wav"], "truncated.wav"),
    BadInput("sample text as WAV", [*DM_SAMPLE, "--audio", "{a}/notwav.wav"], "notwav.wav"),
    BadInput(
        "sample --out is a folder",
        ["sample", "--audio", "{a}/speech.wav", "--out", "{tmp}"],
        "folder",
    ),
    BadInput(
        "sample frame time inf",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--skeleton", "{a}/frametime_inf.bvh"],
        "Frame Time",
    ),
    BadInput(
        "sample frame time nan",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--skeleton", "{a}/frametime_nan.bvh"],
        "Frame Time",
    ),
    BadInput(
        "sample frame time 1e-300",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--skeleton", "{a}/frametime_tiny.bvh"],
        "Frame Time",
    ),
    BadInput(
        "sample frame time 0",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--skeleton", "{a}/frametime_zero.bvh"],
        "Frame Time",
    ),
    BadInput(
        "sample Frames -5",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--skeleton", "{a}/frames_negative.bvh"],
        "Frames",
    ),
    BadInput(
        "sample NaN in BVH",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--skeleton", "{a}/values_nan.bvh"],
        "values_nan.*non-finite",
    ),
    BadInput(
        "sample binary BVH",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--skeleton", "{a}/binary.bvh"],
        "binary.bvh",
    ),
    BadInput(
        "sample missing run",
        [
            "sample",
            "--audio",
            "{a}/speech.wav",
            "--out",
            "{tmp}/g.bvh",
            "--checkpoint",
            "{tmp}/none",
        ],
        "none",
    ),
    BadInput(
        "sample an ADIR checkpoint",
        [
            "sample",
            "--audio",
            "{a}/speech.wav",
            "--out",
            "{tmp}/g.bvh",
            "--checkpoint",
            "{a}/adir_run",
        ],
        "adir",
    ),
    BadInput(
        "sample --samples-per-frame 0",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--samples-per-frame", "0"],
        "--samples-per-frame",
    ),
    BadInput(
        "sample --steps 0", [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--steps", "0"], "--steps"
    ),
    BadInput(
        "sample --steps beyond the model",
        [*DM_SAMPLE, "--audio", "{a}/speech.wav", "--steps", "5000"],
        "--steps",
    ),
    BadInput("train --utterances 0", ["train", "--utterances", "0"], "--utterances"),
    BadInput("train missing data", ["train", "--data", "{tmp}/nope", "--preset", "tiny"], "nope"),
    BadInput("train steps 0", ["train", "--preset", "tiny", "--set", "steps=0"], "steps"),
    BadInput(
        "train dropout 2", ["train", "--preset", "tiny", "--set", "data_dropout=2"], "data_dropout"
    ),
]

DIFFREPRO = [
    BadInput("reproduce on a missing GPU", ["reproduce", "adir", "--device", "cuda:7"], "cuda:7"),
    BadInput("reproduce nothing", ["reproduce"], "name the papers"),
    BadInput("reproduce unknown paper", ["reproduce", "nope"], "nope"),
    BadInput("reproduce names and --all", ["reproduce", "adir", "--all"], "not both"),
    BadInput("reproduce bad seed", ["reproduce", "adir", "--seed", "-4"], "seed"),
    BadInput("reproduce bad device", ["reproduce", "adir", "--device", "gpu0"], "device"),
    BadInput(
        "reproduce --out is a file", ["reproduce", "adir", "--out", "{a}/img8.png"], "img8.png"
    ),
    BadInput("cite unknown paper", ["cite", "nope"], "nope"),
    BadInput("unknown command", ["frobnicate"], "frobnicate"),
]

SUITES = {
    "diffrepro.adir.cli": ADIR,
    "diffrepro.sdm.cli": SDM,
    "diffrepro.vidm.cli": VIDM,
    "diffrepro.diffmotion.cli": DIFFMOTION,
    "diffrepro.core.cli": DIFFREPRO,
}
CASES = [(module, case) for module, cases in SUITES.items() for case in cases]


@pytest.mark.parametrize(
    "module, case", CASES, ids=[f"{m.split('.')[1]}: {c.name}" for m, c in CASES]
)
def test_bad_input(module, case, assets, tmp_path, capsys, monkeypatch) -> None:
    main = importlib.import_module(module).main
    if case.setup is not None:
        case = dataclasses.replace(case, setup=lambda tmp, s=case.setup: s(tmp, assets))
    check_bad_input(main, case, tmp_path, capsys, monkeypatch, places={"a": assets})


def test_the_suite_covers_every_command_with_enough_cases() -> None:
    assert len(CASES) >= 60
    assert all(len(cases) >= 5 for cases in SUITES.values())


SUBPROCESS_CASES = [
    ("adir", BadInput("adir --size 0", ["restore", "--task", "sr2", "--size", "0"], "--size")),
    ("diffmotion", DIFFMOTION[5]),
    ("diffrepro", DIFFREPRO[1]),
]


@pytest.mark.parametrize(
    "command, case", SUBPROCESS_CASES, ids=[c.name for _, c in SUBPROCESS_CASES]
)
def test_bad_input_from_the_console_script(command, case, assets, tmp_path) -> None:
    """The installed console scripts behave like ``main`` (exit code, one line, no traceback)."""
    script = Path(sys.executable).parent / command
    if not script.exists():
        pytest.skip(f"console script {command} is not installed in this environment")
    before = snapshot(tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("DIFFREPRO_DEBUG", None)
    done = subprocess.run(
        [str(script), *case.args(tmp_path, {"a": assets})],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_bad_input_result(
        case, done.returncode, done.stdout, done.stderr, before, snapshot(tmp_path)
    )


def test_an_unexpected_exception_is_an_internal_error_not_a_user_error(capsys) -> None:
    """Bugs are not hidden: they are named as internal errors (exit 1) with the debug hint."""
    import argparse

    from diffrepro.core.cli import run

    parser = argparse.ArgumentParser(prog="x")
    parser.set_defaults(func=lambda args: {}["missing"])
    assert run(parser, []) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "internal error" in err and "DIFFREPRO_DEBUG=1" in err
