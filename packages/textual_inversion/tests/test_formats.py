import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.textual_inversion.embeds import load_embeds, save_placeholder
from diffrepro.textual_inversion.formats import FORMATS, read_embeds, save_embeds
from diffrepro.textual_inversion.placeholders import add_placeholder, expand_prompt, get_rows

SUFFIX = {"safetensors": ".safetensors", "bin": ".bin", "official": ".pt", "a1111": ".pt"}


def trained_bundle(num_vectors):
    """A tiny bundle with a placeholder whose rows are random (as if trained)."""
    sd = tiny_stable_diffusion(seed=0)
    p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="cat", num_vectors=num_vectors)
    rows = torch.randn(num_vectors, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        sd.text_encoder.embeddings.token_embedding.weight[list(p.ids)] = rows
    return sd, p, rows


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n", [1, 3])
def test_round_trip_is_bit_exact_and_reproduces_the_encoder(tmp_path, fmt, n):
    sd, p, rows = trained_bundle(n)
    path = save_placeholder(sd, p, tmp_path / f"e{SUFFIX[fmt]}", format=fmt, step=7)
    token, loaded = read_embeds(path)
    assert token == "<tok>" and loaded.shape == (n, 32) and torch.equal(loaded, rows)
    fresh = tiny_stable_diffusion(seed=0)
    q = load_embeds(fresh, path)
    assert q.ids == p.ids and q.tokens == p.tokens
    prompt = expand_prompt("a photo of <tok> sitting", [q])
    with torch.no_grad():
        assert torch.equal(fresh.encode_prompt(prompt), sd.encode_prompt(prompt))
    assert not torch.equal(
        fresh.encode_prompt(prompt), tiny_stable_diffusion().encode_prompt("a photo of cat sitting")
    )


def test_diffusers_safetensors_layout(tmp_path):
    sd, p, rows = trained_bundle(1)
    path = save_placeholder(sd, p, tmp_path / "learned_embeds.safetensors")
    with safe_open(str(path), framework="pt") as fh:
        assert list(fh.keys()) == ["<tok>"]
        assert fh.metadata() == {"format": "pt"}
        assert tuple(fh.get_tensor("<tok>").shape) == (1, 32)


def test_diffusers_bin_layout(tmp_path):
    sd, p, rows = trained_bundle(2)
    path = save_placeholder(sd, p, tmp_path / "learned_embeds.bin", format="bin")
    obj = torch.load(path, weights_only=True)
    assert list(obj) == ["<tok>"] and torch.equal(obj["<tok>"], rows)


def test_official_layout(tmp_path):
    sd, p, rows = trained_bundle(2)
    path = save_placeholder(sd, p, tmp_path / "embeddings.pt", format="official")
    with torch.serialization.safe_globals([nn.ParameterDict]):
        obj = torch.load(path, weights_only=True)
    assert set(obj) == {"string_to_token", "string_to_param"}
    assert isinstance(obj["string_to_param"], nn.ParameterDict)
    assert isinstance(obj["string_to_param"]["<tok>"], nn.Parameter)
    assert torch.equal(obj["string_to_param"]["<tok>"].detach(), rows)
    assert obj["string_to_token"]["<tok>"].ndim == 0
    assert int(obj["string_to_token"]["<tok>"]) == p.ids[0]


def test_a1111_layout(tmp_path):
    sd, p, rows = trained_bundle(2)
    path = save_placeholder(sd, p, tmp_path / "tok.pt", format="a1111", step=12)
    obj = torch.load(path, weights_only=True)
    assert obj["name"] == "<tok>" and obj["step"] == 12
    assert obj["string_to_token"] == {"*": 265}
    assert list(obj["string_to_param"]) == ["*"]
    assert torch.equal(obj["string_to_param"]["*"], rows)


def test_hand_made_foreign_files_convert(tmp_path):
    rows = torch.randn(2, 32)
    a1111 = {"string_to_token": {"*": 265}, "string_to_param": {"*": rows}, "name": "<web>"}
    torch.save(a1111, tmp_path / "a.pt")
    assert read_embeds(tmp_path / "a.pt")[0] == "<web>"
    assert torch.equal(read_embeds(tmp_path / "a.pt")[1], rows)
    official = {
        "string_to_token": {"*": torch.tensor(265)},
        "string_to_param": nn.ParameterDict({"*": nn.Parameter(rows.clone())}),
    }
    torch.save(official, tmp_path / "embeddings_gs-500.pt")
    token, loaded = read_embeds(tmp_path / "embeddings_gs-500.pt")
    assert token == "*" and torch.equal(loaded, rows)
    assert read_embeds(tmp_path / "embeddings_gs-500.pt", token="<star>")[0] == "<star>"
    save_file({"emb_params": rows}, str(tmp_path / "my-style.safetensors"))
    assert read_embeds(tmp_path / "my-style.safetensors")[0] == "my-style"
    torch.save(rows[0], tmp_path / "raw.bin")
    token, loaded = read_embeds(tmp_path / "raw.bin", token="<raw>")
    assert token == "<raw>" and loaded.shape == (1, 32) and torch.equal(loaded[0], rows[0])
    save_file({"<d>": rows}, str(tmp_path / "d.safetensors"))
    assert read_embeds(tmp_path / "d.safetensors", token="<o>")[0] == "<o>"


def test_official_star_file_needs_a_new_token(tmp_path):
    rows = torch.randn(1, 32)
    torch.save(
        {
            "string_to_token": {"*": torch.tensor(265)},
            "string_to_param": nn.ParameterDict({"*": nn.Parameter(rows)}),
        },
        tmp_path / "embeddings.pt",
    )
    sd = tiny_stable_diffusion()
    with pytest.raises(ValueError, match="already in the vocabulary"):
        load_embeds(sd, tmp_path / "embeddings.pt")
    p = load_embeds(sd, tmp_path / "embeddings.pt", token="<star>")
    assert torch.equal(get_rows(sd.text_encoder, p), rows)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not a pickle"), "weights-only"),
        (lambda p: torch.save({"<a>": Evil()}, p), "weights-only"),
        (lambda p: torch.save(torch.randn(1, 32), p), "bare tensor"),
        (lambda p: torch.save({"<a>": torch.randn(1, 32), "<b>": torch.randn(1, 32)}, p), "keys"),
        (lambda p: torch.save({"<a>": torch.full((1, 32), float("nan"))}, p), "non-finite"),
        (lambda p: torch.save({"<a>": torch.ones(1, 32, dtype=torch.long)}, p), "floating"),
        (lambda p: torch.save({"<a>": torch.ones(1, 2, 32)}, p), "n_vectors, dim"),
        (lambda p: torch.save({"string_to_param": {}}, p), "one embedding"),
        (lambda p: torch.save([1, 2], p), "not an embedding"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.bin"
    make(path)
    with pytest.raises(ValueError, match=message):
        read_embeds(path)


def test_loading_errors(tmp_path):
    sd = tiny_stable_diffusion()
    with pytest.raises(FileNotFoundError):
        read_embeds(tmp_path / "missing.safetensors")
    save_embeds(tmp_path / "wide.safetensors", "<w>", torch.randn(1, 16))
    with pytest.raises(ValueError, match="width 16"):
        load_embeds(sd, tmp_path / "wide.safetensors")
    save_embeds(tmp_path / "ok.safetensors", "<w>", torch.randn(1, 32))
    load_embeds(sd, tmp_path / "ok.safetensors")
    vocab = sd.tokenizer.vocab_size
    with pytest.raises(ValueError, match="already in the vocabulary"):
        load_embeds(sd, tmp_path / "ok.safetensors")
    assert sd.tokenizer.vocab_size == vocab
    (tmp_path / "x.json").write_text(json.dumps({}))
    with pytest.raises(ValueError, match="unsupported"):
        read_embeds(tmp_path / "x.json")


def test_save_checks_format_and_suffix(tmp_path):
    with pytest.raises(ValueError, match="unknown embedding format"):
        save_embeds(tmp_path / "a.pt", "<a>", torch.randn(1, 4), format="ckpt")
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save_embeds(tmp_path / "a.bin", "<a>", torch.randn(1, 4))
    with pytest.raises(ValueError, match="token_id"):
        save_embeds(tmp_path / "a.pt", "<a>", torch.randn(1, 4), format="official")
    assert not list(tmp_path.iterdir())
