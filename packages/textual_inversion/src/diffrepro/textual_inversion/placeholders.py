"""Placeholder pseudo-words: new tokenizer entries and new rows of the text encoder's table.

A placeholder ``<cat-toy>`` with ``n`` vectors is the ``n`` new tokens ``<cat-toy>``,
``<cat-toy>_1`` ... ``<cat-toy>_{n-1}`` (diffusers' naming), with consecutive ids, and prompts
write it once: :func:`expand_prompt` turns ``<cat-toy>`` into ``<cat-toy> <cat-toy>_1 ...``
(diffusers' ``maybe_convert_prompt``). The rows are initialised with the raw token-embedding
row of a single-token initializer word (diffusers' behaviour; the official SD code adds the
position-0 embedding, see the README).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import torch

from diffrepro.core.models.clip import CLIPTextModel
from diffrepro.core.tokenizer import CLIPTokenizer


@dataclass(frozen=True)
class Placeholder:
    """A registered pseudo-word: its name, its token strings and their (consecutive) ids."""

    token: str
    tokens: tuple[str, ...]
    ids: tuple[int, ...]

    @property
    def num_vectors(self) -> int:
        return len(self.ids)

    @property
    def text(self) -> str:
        """What a prompt holds after expansion: the tokens separated by spaces."""
        return " ".join(self.tokens)


def vector_tokens(token: str, num_vectors: int) -> list[str]:
    """``[token, token_1, ..., token_{n-1}]`` (checked: lower-case, no spaces)."""
    check_token(token)
    if num_vectors < 1:
        raise ValueError(f"num_vectors must be at least 1, got {num_vectors}")
    return [token] + [f"{token}_{i}" for i in range(1, num_vectors)]


def check_token(token: str) -> None:
    """A placeholder must be one non-empty word that the tokenizer's normaliser leaves as is
    (NFC, lower case: upper-case letters would never match the lower-cased prompt)."""
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"placeholder token {token!r} must be one word without spaces")
    if unicodedata.normalize("NFC", token).lower() != token:
        raise ValueError(f"placeholder token {token!r} must be lower case")
    if "{" in token or "}" in token:
        raise ValueError(f"placeholder token {token!r} must not contain braces")


def initializer_id(tokenizer: CLIPTokenizer, word: str) -> int:
    """The id of ``word`` if it is exactly one token (else ``ValueError``, as in both codes)."""
    ids = tokenizer.encode(word)[1:-1]
    if len(ids) != 1:
        raise ValueError(
            f"initializer word {word!r} is {len(ids)} tokens, it must be a single token"
        )
    return ids[0]


def token_table(text_encoder: CLIPTextModel) -> torch.Tensor:
    """The token-embedding weight (vocab, d)."""
    return text_encoder.embeddings.token_embedding.weight


def add_placeholder(
    tokenizer: CLIPTokenizer,
    text_encoder: CLIPTextModel,
    token: str,
    *,
    init: str | None = None,
    num_vectors: int = 1,
    rows: torch.Tensor | None = None,
) -> Placeholder:
    """Register ``token`` with ``num_vectors`` vectors; its rows are ``rows`` (n, d) if given,
    else copies of the initializer word's row, else the mean row (``init=None``)."""
    tokens = vector_tokens(token, num_vectors)
    table = token_table(text_encoder)
    if tokenizer.vocab_size != table.shape[0]:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} ids but the text encoder "
            f"{table.shape[0]} embedding rows"
        )
    if rows is not None and tuple(rows.shape) != (num_vectors, table.shape[1]):
        raise ValueError(
            f"embedding of {token!r} has shape {tuple(rows.shape)}, "
            f"expected ({num_vectors}, {table.shape[1]})"
        )
    if rows is None and init is not None:
        rows = table[initializer_id(tokenizer, init)].detach().expand(num_vectors, -1)
    known = [t for t in tokens if len(tokenizer.encode(t)) == 3]  # [bos, one id, eos]
    if known:
        raise ValueError(f"tokens already in the vocabulary: {known}; choose a new word")
    ids = tokenizer.add_tokens(tokens)
    first = table.shape[0]
    if ids != list(range(first, first + num_vectors)):
        raise ValueError(f"new token ids {ids} are not the next {num_vectors} rows after {first}")
    text_encoder.resize_token_embeddings(first + num_vectors)
    if rows is not None:
        set_rows(text_encoder, ids, rows)
    return Placeholder(token, tuple(tokens), tuple(ids))


def set_rows(text_encoder: CLIPTextModel, ids: list[int] | tuple[int, ...], rows) -> None:
    """Write ``rows`` (n, d) into the token table at ``ids`` (cast to the table's dtype)."""
    table = token_table(text_encoder)
    with torch.no_grad():
        table[list(ids)] = rows.detach().to(table.device, table.dtype)


def get_rows(text_encoder: CLIPTextModel, placeholder: Placeholder) -> torch.Tensor:
    """A detached CPU copy of the placeholder's rows (n, d)."""
    return token_table(text_encoder)[list(placeholder.ids)].detach().cpu().clone()


def expand_prompt(prompt: str, placeholders: list[Placeholder] | tuple[Placeholder, ...]) -> str:
    """Replace each multi-vector placeholder by its ``n`` tokens (``<t>`` -> ``<t> <t>_1``).

    A token already followed by ``_<digits>`` (written out by hand) is left alone.
    """
    for p in placeholders:
        if p.num_vectors > 1:
            pattern = re.escape(p.token) + r"(?!_\d)"
            prompt = re.sub(pattern, lambda _m, p=p: p.text, prompt, flags=re.IGNORECASE)
    return prompt


def check_fits(tokenizer: CLIPTokenizer, prompts: list[str] | tuple[str, ...]) -> None:
    """Raise if a (placeholder-expanded) prompt is longer than the text encoder's context: the
    tokenizer would cut its tail silently (spec §9.6, many vectors eat the 77 positions)."""
    for prompt in prompts:
        n = len(tokenizer.encode(prompt))
        if n > tokenizer.max_length:
            raise ValueError(
                f"prompt {prompt!r} is {n} tokens with the placeholder vectors, "
                f"more than the text encoder's {tokenizer.max_length}"
            )
