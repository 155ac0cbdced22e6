"""The neutral prompt templates Textual Inversion trains with (spec §3.4).

``OBJECT_TEMPLATES`` is the official ``imagenet_templates_small`` (81 templates: the "photo",
"illustration" and "depiction" variants); the diffusers example uses its first 27
(``DIFFUSERS_OBJECT_TEMPLATES``). ``STYLE_TEMPLATES`` (19) are the same in both codes.
"""

from __future__ import annotations

_PHOTO = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a photo of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a rendition of a {}",
    "a photo of a nice {}",
    "a good photo of a {}",
    "a photo of the nice {}",
    "a photo of the small {}",
    "a photo of the weird {}",
    "a photo of the large {}",
    "a photo of a cool {}",
    "a photo of a small {}",
)


def _variant(phrase: str) -> tuple[str, ...]:
    """The photo block with a leading "a photo of" replaced (the official code's other blocks)."""
    return tuple(
        phrase + t[len("a photo of") :] if t.startswith("a photo of") else t for t in _PHOTO
    )


OBJECT_TEMPLATES = _PHOTO + _variant("an illustration of") + _variant("a depiction of")
DIFFUSERS_OBJECT_TEMPLATES = _PHOTO
STYLE_TEMPLATES = (
    "a painting in the style of {}",
    "a rendering in the style of {}",
    "a cropped painting in the style of {}",
    "the painting in the style of {}",
    "a clean painting in the style of {}",
    "a dirty painting in the style of {}",
    "a dark painting in the style of {}",
    "a picture in the style of {}",
    "a cool painting in the style of {}",
    "a close-up painting in the style of {}",
    "a bright painting in the style of {}",
    "a cropped painting in the style of {}",
    "a good painting in the style of {}",
    "a close-up painting in the style of {}",
    "a rendition in the style of {}",
    "a nice painting in the style of {}",
    "a small painting in the style of {}",
    "a weird painting in the style of {}",
    "a large painting in the style of {}",
)
PROPERTIES = ("object", "style")
OBJECT_SETS = {"official": OBJECT_TEMPLATES, "diffusers": DIFFUSERS_OBJECT_TEMPLATES}


def templates_for(learnable_property: str, object_set: str = "official") -> tuple[str, ...]:
    """The template set of ``learnable_property`` ("object" or "style")."""
    if learnable_property == "style":
        return STYLE_TEMPLATES
    if learnable_property != "object":
        raise ValueError(
            f"learnable_property must be one of {PROPERTIES}, got {learnable_property!r}"
        )
    if object_set not in OBJECT_SETS:
        raise ValueError(
            f"object_templates must be one of {tuple(OBJECT_SETS)}, got {object_set!r}"
        )
    return OBJECT_SETS[object_set]
