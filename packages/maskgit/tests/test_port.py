import numpy as np
import pytest
import torch
from flax_reference import (
    tokenizer_forward,
    tokenizer_tree,
    transformer_forward,
    transformer_tree,
)

from diffrepro.maskgit.flax_msgpack import CHUNKED_MARKER, pack_flax, read_flax, unpack_flax
from diffrepro.maskgit.loading import load_tokenizer, load_transformer
from diffrepro.maskgit.transformer import MaskGitTransformer


def write(path, tree):
    path.write_bytes(pack_flax(tree))
    return path


def test_msgpack_round_trip_and_dtypes(tmp_path):
    tree = {
        "a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)},
        "c": np.array([1, 2], dtype=np.int32),
        "s": np.float32(2.5),
    }
    back = read_flax(write(tmp_path / "ckpt", tree))
    assert back["a"]["b"].dtype == np.float32 and np.array_equal(back["a"]["b"], tree["a"]["b"])
    assert back["c"].dtype == np.int32 and float(back["s"]) == 2.5


def test_chunked_arrays_are_refused():
    data = pack_flax({"params": {"big": {CHUNKED_MARKER: True, "shape": [2], "chunks": {}}}})
    with pytest.raises(ValueError, match="chunked array"):
        unpack_flax(data)
    with pytest.raises(ValueError, match="not a Flax msgpack"):
        unpack_flax(b"\xc1garbage")


def test_flax_transformer_matches_numpy_reference(tmp_path):
    tree = transformer_tree(vocab=20, seq=10, width=8, heads=2, mlp=16, depth=2)
    model = load_transformer(write(tmp_path / "maskgit_ckpt", tree), codebook_size=12)
    cfg = model.config
    assert (cfg.codebook_size, cfg.num_classes, cfg.mask_id, cfg.vocab_size) == (12, 7, 19, 20)
    assert (cfg.latent_size, cfg.width, cfg.heads, cfg.depth, cfg.mlp_dim) == (3, 8, 2, 2, 16)
    tokens = torch.tensor(
        [[12, 0, 19, 3, 19, 5, 11, 19, 1, 2], [18, 19, 19, 19, 4, 4, 4, 0, 9, 19]]
    )
    ours = model.double()(tokens).detach().numpy()
    ref = transformer_forward(tree, tokens.numpy())
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
    # the output matrix is tied to the word embeddings
    state = model.state_dict()
    assert "head.weight" not in state
    flat = tree["params"]["Embed_0"]["word_embeddings"]["embedding"]
    assert np.array_equal(model.tok_emb.weight.detach().float().numpy(), flat)


def test_qkv_packing_is_head_major(tmp_path):
    tree = transformer_tree(vocab=20, seq=10, width=8, heads=2, mlp=16, depth=1)
    model = load_transformer(write(tmp_path / "c", tree), codebook_size=12)
    att = tree["params"]["TransformerLayer_0"]["Attention_0"]["self_attention"]
    w = model.blocks[0].attn.qkv.weight.detach().numpy()
    # row h·d + j of the key block is head h, channel j of the Flax key kernel
    assert np.array_equal(w[8 + 1 * 4 + 2], att["key"]["kernel"][:, 1, 2])
    out = model.blocks[0].attn.out.weight.detach().numpy()
    assert np.array_equal(out[:, 1 * 4 + 3], att["out"]["kernel"][1, 3])


@pytest.mark.parametrize("res", [1, 2])
def test_flax_tokenizer_matches_numpy_reference(tmp_path, res):
    tree = tokenizer_tree(filters=8, mults=(1, 2), res=res, dim=4, codes=12)
    model = load_tokenizer(write(tmp_path / "tokenizer_ckpt", tree))
    cfg = model.config
    assert (cfg.filters, cfg.channel_multipliers, cfg.num_res_blocks) == (8, (1, 2), res)
    assert (cfg.embedding_dim, cfg.codebook_size, cfg.group_count(8)) == (4, 12, 8)
    images = np.random.default_rng(1).random((2, 3, 8, 8))
    codes, recon = tokenizer_forward(tree, images, (1, 2), res, groups=8)
    model = model.double()
    x = torch.from_numpy(images)
    assert np.array_equal(model.encode(x).numpy(), codes)
    out = model.decoder(model.quantizer.embed(torch.from_numpy(codes))).detach().numpy()
    np.testing.assert_allclose(out, recon, rtol=1e-9, atol=1e-9)


def test_shortcut_quirk_applies_to_the_block_output(tmp_path):
    tree = tokenizer_tree(filters=8, mults=(1, 2), res=1, dim=4, codes=12)
    model = load_tokenizer(write(tmp_path / "t", tree)).double()
    block = model.encoder.levels[1][0]  # 8 → 16 channels: has the 1×1 "shortcut"
    x = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    h = block.conv2(
        torch.nn.functional.silu(block.norm2(block.conv1(torch.nn.functional.silu(block.norm1(x)))))
    )
    assert torch.allclose(block(x), h + block.shortcut(h))


def test_flax_errors_name_the_problem(tmp_path):
    tree = transformer_tree()
    del tree["params"]["MlmLayer_0"]["mlm_ln"]
    with pytest.raises(ValueError, match="no tensor 'MlmLayer_0.mlm_ln.scale'"):
        load_transformer(write(tmp_path / "c", tree), codebook_size=12)
    tree = transformer_tree()
    tree["params"]["Extra_0"] = {"kernel": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match="unexpected Flax tensors Extra_0.kernel"):
        load_transformer(write(tmp_path / "d", tree), codebook_size=12)
    with pytest.raises(ValueError, match="not a MaskGIT tokenizer"):
        load_tokenizer(write(tmp_path / "e", transformer_tree()))


def _to_hmorimitsu(state):
    out = {}
    for k, v in state.items():
        k = (
            k.replace("attn.qkv.weight", "MultiHeadAttention.in_proj_weight")
            .replace("attn.qkv.bias", "MultiHeadAttention.in_proj_bias")
            .replace("attn.out.", "MultiHeadAttention.out_proj.")
            .replace("attn_ln", "AttentionLN")
            .replace("mlp_ln", "MlpLN")
            .replace("mlp.fc1", "MLP.0")
            .replace("mlp.fc2", "MLP.2")
            .replace("head.dense", "Token_Prediction.0")
            .replace("head.ln", "Token_Prediction.2")
        )
        out["bias" if k == "head.bias" else k] = v
    return out


def test_pytorch_port_files_are_accepted(tmp_path):
    tree = transformer_tree(depth=1)
    flax_model = load_transformer(write(tmp_path / "c", tree), codebook_size=12)
    path = tmp_path / "maskgit.ckpt"
    torch.save({"state_dict": _to_hmorimitsu(flax_model.state_dict())}, path)
    model = load_transformer(path, flax_model.config)
    tokens = torch.tensor([[12, 19, 3, 19, 1, 1, 1, 1, 1, 0]])
    assert torch.equal(model(tokens), flax_model(tokens))

    tok_tree = tokenizer_tree(filters=8, mults=(1, 2), res=1)
    tok = load_tokenizer(write(tmp_path / "t", tok_tree))
    muse = {}
    for k, v in tok.state_dict().items():
        k = k.replace("quantizer.codebook", "quantize.embedding.weight").replace(
            "shortcut", "nin_shortcut"
        )
        for j in range(2):
            k = k.replace(f"encoder.levels.{j}.", f"encoder.down.{j}.block.")
            k = k.replace(f"decoder.levels.{j}.blocks.", f"decoder.up.{1 - j}.block.")
            k = k.replace(f"decoder.levels.{j}.upsample_conv", f"decoder.up.{1 - j}.upsample_conv")
        muse[k] = v
    path = tmp_path / "vq.bin"
    torch.save(muse, path)
    ported = load_tokenizer(path, tok.config)
    for k, v in tok.state_dict().items():
        assert torch.equal(ported.state_dict()[k], v), k


def test_our_safetensors_round_trip(tmp_path):
    from diffrepro.maskgit.loading import save_model
    from diffrepro.maskgit.transformer import TransformerConfig

    model = MaskGitTransformer(
        TransformerConfig(
            codebook_size=8, num_classes=2, latent_size=2, width=16, depth=1, heads=2, mlp_dim=32
        )
    )
    path = save_model(tmp_path / "t.safetensors", model, "transformer")
    back = load_transformer(path)
    assert back.config == model.config
    with pytest.raises(ValueError, match="not a MaskGIT tokenizer"):
        load_tokenizer(path)
