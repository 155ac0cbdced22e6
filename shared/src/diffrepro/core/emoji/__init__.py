"""The embedded OpenMoji emoji set: renders, captions, a held-out split and coarse classes.

::

    from diffrepro.core import emoji
    emoji.select("heldout")[0]            # Emoji(index, codepoint, name, coarse, heldout)
    x, mask = emoji.images(32, "train")   # (N, 3, 32, 32) in [-1, 1] on white, (N, 1, 32, 32)
    emoji.find("dog face").caption(emoji.TEMPLATES[0])   # "an emoji of a dog face"

See :mod:`diffrepro.core.emoji.data` for the rules (set, captions, split, rendering, cache) and
:mod:`diffrepro.core.emoji.classes` for the coarse classes.
"""

from diffrepro.core.emoji.classes import COARSE_CLASSES, coarse_class, coarse_label
from diffrepro.core.emoji.data import (
    DATA_VERSION,
    SPLITS,
    TEMPLATES,
    Emoji,
    EmojiDataset,
    cache_dir,
    emoji_set,
    find,
    font_path,
    images,
    is_heldout,
    render,
    rgba_array,
    select,
)

__all__ = [
    "COARSE_CLASSES",
    "DATA_VERSION",
    "SPLITS",
    "TEMPLATES",
    "Emoji",
    "EmojiDataset",
    "cache_dir",
    "coarse_class",
    "coarse_label",
    "emoji_set",
    "find",
    "font_path",
    "images",
    "is_heldout",
    "render",
    "rgba_array",
    "select",
]
