"""CLIPTokenizer on a hand-made vocabulary in CLIP's format (no transformers needed)."""

import json

import pytest

from diffrepro.core.tokenizer import BOS, EOS, CLIPTokenizer, write_vocab_files

WORDS = ["a", "photo", "of", "cat", "dog", "the", "red", "ing", "!", "1"]


@pytest.fixture
def vocab_and_tokenizer(tmp_path):
    vocab = write_vocab_files(tmp_path, WORDS)
    return vocab, CLIPTokenizer.from_pretrained(tmp_path)


def test_words_become_their_merged_ids(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    expected = [vocab[BOS]] + [vocab[w + "</w>"] for w in ("a", "photo", "of", "a", "cat")]
    assert tok.encode("a photo of a cat") == expected + [vocab[EOS]]


def test_lowercase_whitespace_digits_and_punctuation(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    assert tok.encode("  A   PHOTO\tof\n a Cat ") == tok.encode("a photo of a cat")
    # digits are split one by one; punctuation runs are their own word
    ids = tok.encode("cat 11!")
    assert ids[1:-1] == [vocab["cat</w>"], vocab["1</w>"], vocab["1</w>"], vocab["!</w>"]]
    # an unknown word falls back to byte symbols, the last one with </w>
    ids = tok.encode("zq")[1:-1]
    assert ids == [vocab["z"], vocab["q</w>"]]


def test_padding_and_truncation(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    batch = tok(["a cat", ""])
    assert batch.shape == (2, 77)
    assert batch[0, :4].tolist() == [vocab[BOS], vocab["a</w>"], vocab["cat</w>"], vocab[EOS]]
    assert (batch[0, 4:] == vocab[EOS]).all()  # SD 1.x pads with the end token
    assert batch[1].tolist() == [vocab[BOS]] + [vocab[EOS]] * 76
    long = tok(" ".join(["dog"] * 100))[0]
    assert long[0] == vocab[BOS] and long[-1] == vocab[EOS]
    assert (long[1:-1] == vocab["dog</w>"]).all()


def test_pad_token_and_length_from_config(tmp_path):
    vocab = write_vocab_files(tmp_path, WORDS)
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"pad_token": "!", "model_max_length": 10})
    )
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    row = tok("a cat")[0].tolist()
    assert row == [vocab[BOS], vocab["a</w>"], vocab["cat</w>"], vocab[EOS]] + [vocab["!"]] * 6


def test_added_tokens_are_whole_words(vocab_and_tokenizer):
    vocab, tok = vocab_and_tokenizer
    before = tok.vocab_size
    (new_id,) = tok.add_tokens(["<cat-toy>"])
    assert new_id == before and tok.vocab_size == before + 1
    ids = tok.encode("a <cat-toy> photo")
    assert ids[1:-1] == [vocab["a</w>"], new_id, vocab["photo</w>"]]
    assert tok.encode("A <Cat-Toy> photo") == ids
    assert "<cat-toy>" in tok.decode(ids)
    with pytest.raises(ValueError, match="already"):
        tok.add_tokens("<cat-toy>")


def test_missing_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        CLIPTokenizer.from_pretrained(tmp_path)
