"""CLIP's byte-level BPE tokenizer, read from a local ``vocab.json`` + ``merges.txt``.

Token ids equal transformers' ``CLIPTokenizer`` (the v5 ``tokenizers``-backed one, which the SD
folders' ``tokenizer/`` is loaded with): NFC + whitespace collapse + lower-casing, CLIP's
pre-tokenisation regex (letters runs, single digits, punctuation runs, English contractions),
byte-level BPE with ``</w>`` on a word's last symbol, ``<|startoftext|>`` first and
``<|endoftext|>`` last. ``__call__`` pads to ``max_length`` (77) with the pad token
(``<|endoftext|>`` for SD 1.x; SD 2.x folders name ``!`` in ``special_tokens_map.json``) and
truncates so that the end token is kept, exactly as the SD pipelines call the tokenizer.

No ftfy: like transformers v5, odd input (mojibake, HTML entities) is not repaired.
``add_tokens`` registers new pseudo-words (Textual Inversion) that are matched before BPE.
``minimal_vocab(words)`` / ``write_vocab_files(folder, words)`` make a tiny vocabulary in CLIP's
format (all bytes plus the given words) for tests and CPU demos, where the real 49408-entry
vocabulary is not at hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
_PIECES = (  # special tokens, contractions, letter runs, single digits, other runs
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
    r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


class CLIPTokenizer:
    """``tokenizer(prompts) -> LongTensor (B, max_length)``; ``encode(text) -> list[int]``."""

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        *,
        max_length: int = 77,
        pad_token: str = EOS,
    ) -> None:
        for token in (BOS, EOS, pad_token):
            if token not in vocab:
                raise ValueError(f"the vocabulary has no entry for the special token {token!r}")
        model = BPE(vocab=vocab, merges=merges, end_of_word_suffix="</w>", unk_token=EOS)
        self._tok = Tokenizer(model)
        self._tok.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        split = pre_tokenizers.Split(Regex(_PIECES), behavior="removed", invert=True)
        self._tok.pre_tokenizer = pre_tokenizers.Sequence(
            [split, pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
        # the pad token is special too (transformers splits SD 2.x's "!" out of the text)
        specials = dict.fromkeys((BOS, EOS, pad_token))
        self._tok.add_special_tokens([AddedToken(t, special=True) for t in specials])
        self.max_length = max_length
        self.bos_id = vocab[BOS]
        self.eos_id = vocab[EOS]
        self.pad_id = vocab[pad_token]

    @classmethod
    def from_files(
        cls, vocab_file: str | os.PathLike, merges_file: str | os.PathLike, **kwargs
    ) -> CLIPTokenizer:
        """From a ``vocab.json`` and a ``merges.txt`` (the files of the SD hub folders)."""
        return cls(_read_vocab(Path(vocab_file)), _read_merges(Path(merges_file)), **kwargs)

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike, *, max_length: int | None = None
    ) -> CLIPTokenizer:
        """Load a transformers tokenizer folder: ``vocab.json`` + ``merges.txt`` (v4 layout) or
        ``tokenizer.json`` (what transformers v5 saves; its non-special added tokens, e.g.
        Textual Inversion placeholders, are added too), plus the pad token and
        ``model_max_length`` from ``tokenizer_config.json`` / ``special_tokens_map.json``."""
        folder = Path(folder)
        config = {
            **_read_json(folder / "special_tokens_map.json"),
            **_read_json(folder / "tokenizer_config.json"),
        }
        pad = config.get("pad_token", EOS)
        pad = pad.get("content", EOS) if isinstance(pad, dict) else pad
        if max_length is None:
            max_length = int(config.get("model_max_length", 77))
            max_length = max_length if max_length <= 4096 else 77  # "unbounded" sentinel values
        settings = {"max_length": max_length, "pad_token": pad}
        if (folder / "vocab.json").is_file() or not (folder / "tokenizer.json").is_file():
            return cls.from_files(folder / "vocab.json", folder / "merges.txt", **settings)
        return _from_tokenizer_json(cls, folder / "tokenizer.json", settings)

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (the text encoder's embedding rows)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """``[bos, bpe ids..., eos]``, without padding or truncation."""
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids, self.eos_id]

    def __call__(self, prompts: str | list[str]) -> torch.Tensor:
        """Ids padded (pad token) and truncated (end token kept) to ``max_length``."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        rows = [self._fit(self.encode(p)) for p in prompts]
        return torch.tensor(rows, dtype=torch.long)

    def add_tokens(self, tokens: str | list[str]) -> list[int]:
        """Register new whole-word tokens (placeholders); returns their ids in order.

        Raises ``ValueError`` if a token is already known, since its embedding would be shared.
        """
        tokens = [tokens] if isinstance(tokens, str) else list(tokens)
        known = [t for t in tokens if self._tok.token_to_id(t) is not None]
        if known:
            raise ValueError(f"tokens already in the vocabulary: {known}")
        self._tok.add_tokens([AddedToken(t, normalized=True) for t in tokens])
        return [self._tok.token_to_id(t) for t in tokens]

    def token_to_id(self, token: str) -> int:
        """The id of one vocabulary entry (``ValueError`` if unknown)."""
        found = self._tok.token_to_id(token)
        if found is None:
            raise ValueError(f"unknown token {token!r}")
        return found

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Text of ``ids`` with special tokens dropped and word ends turned into spaces."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        pieces = [self._tok.id_to_token(i) for i in ids if i not in (self.bos_id, self.eos_id)]
        text = decoders.ByteLevel().decode([p for p in pieces if p is not None])
        return " ".join(text.replace("</w>", " ").split())

    def _fit(self, ids: list[int]) -> list[int]:
        if len(ids) > self.max_length:
            ids = ids[: self.max_length - 1] + [self.eos_id]
        return ids + [self.pad_id] * (self.max_length - len(ids))


def minimal_vocab(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A tiny vocabulary in CLIP's layout and its merges: the 256 byte symbols, the same with
    ``</w>``, merges building each (lower-case) word left to right with ``</w>`` on its last
    symbol, then the start and end tokens. Any text still tokenizes (byte fallback)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    symbols = alphabet + [c + "</w>" for c in alphabet]
    merges: list[tuple[str, str]] = []
    for word in words:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in merges:
                merges.append(pair)
                symbols.append(pair[0] + pair[1])
            parts = [pair[0] + pair[1], *parts[2:]]
    vocab = {s: i for i, s in enumerate(dict.fromkeys([*symbols, BOS, EOS]))}
    return vocab, merges


def write_vocab_files(folder: str | os.PathLike, words: list[str]) -> dict[str, int]:
    """Write :func:`minimal_vocab` as ``vocab.json`` + ``merges.txt``; returns the vocabulary."""
    vocab, merges = minimal_vocab(words)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vocab


def _from_tokenizer_json(cls: type[CLIPTokenizer], path: Path, settings: dict) -> CLIPTokenizer:
    data = _read_json(path, required=True)
    model = data.get("model", {}) if isinstance(data, dict) else {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{path} does not hold a BPE tokenizer")
    merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    added = [t for t in data.get("added_tokens", []) if not t.get("special")]
    vocab = {
        **model["vocab"],
        **{t["content"]: t["id"] for t in data.get("added_tokens", []) if t.get("special")},
    }
    tokenizer = cls(vocab, merges, **settings)
    for token in sorted(added, key=lambda t: t["id"]):
        (new_id,) = tokenizer.add_tokens([token["content"]])
        if new_id != token["id"]:
            raise ValueError(
                f"{path}: added token {token['content']!r} has id {token['id']}, expected {new_id}"
            )
    return tokenizer


def _read_vocab(path: Path) -> dict[str, int]:
    vocab = _read_json(path, required=True)
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise ValueError(f"{path} is not a token -> id JSON object")
    return vocab


def _read_merges(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    merges = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: a merge line must hold two symbols, got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


def _read_json(path: Path, *, required: bool = False):
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
