import hashlib

import pytest

from diffrepro.textual_inversion.templates import (
    DIFFUSERS_OBJECT_TEMPLATES,
    OBJECT_TEMPLATES,
    STYLE_TEMPLATES,
    templates_for,
)

# sha256 of "\n".join(list) of rinongal/textual_inversion's imagenet_templates_small and of the
# style list (ldm/data/personalized*.py, identical to the diffusers example's style list)
OFFICIAL_OBJECT_SHA = "9492b607526eaaaefe38c5f4dabd0f5ca492456e6e8437ff1870590754628d7a"
STYLE_SHA = "e7ec2b1750c5ab55d7abc8afd59dba90ef334f8f48b7b1bf720c5ff8a9438749"


def sha(templates):
    return hashlib.sha256("\n".join(templates).encode()).hexdigest()


def test_template_sets_equal_the_official_lists():
    assert len(OBJECT_TEMPLATES) == 81 and sha(OBJECT_TEMPLATES) == OFFICIAL_OBJECT_SHA
    assert len(STYLE_TEMPLATES) == 19 and sha(STYLE_TEMPLATES) == STYLE_SHA
    assert OBJECT_TEMPLATES[:27] == DIFFUSERS_OBJECT_TEMPLATES
    assert OBJECT_TEMPLATES[27] == "an illustration of a {}"
    assert OBJECT_TEMPLATES[54] == "a depiction of a {}"


@pytest.mark.parametrize("templates", [OBJECT_TEMPLATES, STYLE_TEMPLATES])
def test_every_template_has_exactly_one_slot(templates):
    for t in templates:
        assert t.count("{}") == 1 and t.count("{") == 1
        assert "<x>" in t.format("<x>")


def test_selection_by_learnable_property():
    assert templates_for("object") is OBJECT_TEMPLATES
    assert templates_for("object", "diffusers") is DIFFUSERS_OBJECT_TEMPLATES
    assert templates_for("style") is STYLE_TEMPLATES
    assert templates_for("style", "diffusers") is STYLE_TEMPLATES
    with pytest.raises(ValueError, match="learnable_property"):
        templates_for("scene")
    with pytest.raises(ValueError, match="object_templates"):
        templates_for("object", "mine")
