"""core.base_model_cli: the --model / --checkpoint / --tokenizer flags of single-image commands."""

import argparse

import pytest
import torch

from diffrepro.core.base_model_cli import (
    TINY_MODEL,
    ZOO_MODEL,
    add_model_args,
    check_prompt_length,
    model_source,
    open_model,
)
from diffrepro.core.cli import add_common_args
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_common_args(parser, preset="demo")
    add_model_args(parser)
    return parser.parse_args(list(argv))


def test_model_source_picks_checkpoint_model_fallback_then_preset():
    assert model_source(parse()) == ZOO_MODEL == "emoji-t2i"
    assert model_source(parse("--preset", "tiny")) == TINY_MODEL == "sd-tiny"
    assert model_source(parse("--preset", "tiny"), fallback="saved") == "saved"
    assert model_source(parse("--model", "m"), fallback="saved") == "m"
    assert model_source(parse("--checkpoint", "c.ckpt"), fallback="saved") == "c.ckpt"
    with pytest.raises(ValueError, match="give one"):
        model_source(parse("--model", "m", "--checkpoint", "c.ckpt"))


def test_tokenizer_flag_is_a_path():
    args = parse("--tokenizer", "tok")
    assert str(args.tokenizer) == "tok" and parse().tokenizer is None and parse().model is None


def test_open_model_opens_the_tiny_stack_in_the_dtype():
    sd = open_model("sd-tiny", parse("--device", "cpu"), "bfloat16")
    assert sd.dtype == torch.bfloat16 and sd.device.type == "cpu"


def test_check_prompt_length_names_the_flag():
    sd = tiny_stable_diffusion(seed=0)
    check_prompt_length(sd, "a cat", "--prompt")
    limit = sd.tokenizer.max_length
    with pytest.raises(ValueError, match=f"--edit-prompt has .* than the text encoder's {limit}"):
        check_prompt_length(sd, "a cat " * limit, "--edit-prompt")
    fits = " ".join(["cat"] * (limit - 2))  # bos + eos
    assert len(sd.tokenizer.encode(fits)) == limit
    check_prompt_length(sd, fits, "--prompt")
    with pytest.raises(ValueError):
        check_prompt_length(sd, fits + " cat", "--prompt")
