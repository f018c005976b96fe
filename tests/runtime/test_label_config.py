"""parse_config and the tag helpers: SDK-identical shapes, hostile XML, property test."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from label_studio_ml.label_config import (
    LabelConfigError,
    build_label_map,
    get_first_tag_occurence,
    get_single_tag_keys,
    parse_config,
)
from label_studio_ml.utils import get_single_tag_keys as utils_get_single_tag_keys
from label_studio_ml.utils import parse_config as utils_parse_config

IMAGE_CHOICES = (
    '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
    '<Choice value="Cat"/><Choice value="Dog" alias="dog"/></Choices></View>'
)
TEXT_NER = (
    '<View><Labels name="label" toName="text"><Label value="PER" background="red"/>'
    '<Label value="ORG" background="blue"/></Labels><Text name="text" value="$text"/></View>'
)
RECTANGLES = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
    '<Label value="Car" background="green" predicted_values="car,truck"/><Label value="Person"/>'
    "</RectangleLabels></View>"
)
SEED_CONFIG = """
<View>
  <Image name="image" value="$image"/>
  <Choices name="choice" toName="image" showInLine="true">
    <Choice value="Boeing" background="blue"/>
    <Choice value="Airbus" background="green" />
  </Choices>
</View>
"""


def test_contract_image_choices() -> None:
    assert parse_config(IMAGE_CHOICES) == {
        "choice": {
            "type": "Choices",
            "to_name": ["image"],
            "inputs": [{"type": "Image", "valueType": None, "value": "image"}],
            "labels": ["Cat", "dog"],
            "labels_attrs": {"Cat": {"value": "Cat"}, "dog": {"value": "Dog", "alias": "dog"}},
        }
    }


def test_contract_text_ner() -> None:
    assert parse_config(TEXT_NER) == {
        "label": {
            "type": "Labels",
            "to_name": ["text"],
            "inputs": [{"type": "Text", "valueType": None, "value": "text"}],
            "labels": ["PER", "ORG"],
            "labels_attrs": {
                "PER": {"value": "PER", "background": "red"},
                "ORG": {"value": "ORG", "background": "blue"},
            },
        }
    }


def test_contract_rectangles() -> None:
    assert parse_config(RECTANGLES) == {
        "label": {
            "type": "RectangleLabels",
            "to_name": ["image"],
            "inputs": [{"type": "Image", "valueType": None, "value": "image"}],
            "labels": ["Car", "Person"],
            "labels_attrs": {
                "Car": {"value": "Car", "background": "green", "predicted_values": "car,truck"},
                "Person": {"value": "Person"},
            },
        }
    }


def test_seed_tutorial_config() -> None:
    parsed = parse_config(SEED_CONFIG)
    from_name, schema = list(parsed.items())[0]
    assert (from_name, schema["to_name"][0], schema["labels"]) == ("choice", "image", ["Boeing", "Airbus"])
    assert schema["labels_attrs"]["Airbus"] == {"value": "Airbus", "background": "green"}
    assert utils_parse_config is parse_config and utils_get_single_tag_keys is get_single_tag_keys


@pytest.mark.parametrize("config", [None, "", "   \n"])
def test_empty_config(config: str | None) -> None:
    assert parse_config(config) == {}


def test_textarea_without_labels_and_value_type() -> None:
    parsed = parse_config(
        '<View><Text name="t" value="$doc" valueType="url"/>'
        '<TextArea name="answer" toName="t" rows="2"/></View>'
    )
    assert parsed == {
        "answer": {
            "type": "TextArea",
            "to_name": ["t"],
            "inputs": [{"type": "Text", "valueType": "url", "value": "doc"}],
            "labels": [],
            "labels_attrs": {},
        }
    }


def test_nested_choice_in_view_and_header_ignored() -> None:
    parsed = parse_config(
        '<View><Text name="t" value="$t"/><Choices name="c" toName="t">'
        '<Header value="pick"/><View><View><Choice value="A" hint="x"/></View></View>'
        '<Choice value="B"/></Choices></View>'
    )
    assert parsed["c"]["labels"] == ["A", "B"]
    assert parsed["c"]["labels_attrs"]["A"] == {"value": "A", "hint": "x"}


def test_multi_to_name_and_dangling_to_name() -> None:
    parsed = parse_config(
        '<View><Image name="a" value="$a"/><Text name="b" value="$$b"/>'
        '<Choices name="c" toName="a,missing,b"><Choice value="X"/></Choices></View>'
    )
    assert parsed["c"]["to_name"] == ["a", "missing", "b"]
    assert parsed["c"]["inputs"] == [
        {"type": "Image", "valueType": None, "value": "a"},
        {"type": "Text", "valueType": None, "value": "b"},
    ]


def test_dynamic_labels_conditionals_regex() -> None:
    parsed = parse_config(
        '<View><Text name="t" value="$t"/>'
        '<Labels name="dyn" toName="t" value="$options"/>'
        '<Choices name="api" toName="t" apiUrl="http://x/labels"/>'
        '<Choices name="notvar" toName="t" value="$opt1"/>'
        '<Choices name="cond" toName="t" perRegion="true" whenLabelValue="PER"><Choice value="Y"/></Choices>'
        '<Repeater on="$pages" indexFlag="{{idx}}"><Image name="page_{{idx}}" value="$pages[{{idx}}].url"/>'
        '<Labels name="lab_{{idx}}" toName="page_{{idx}}"><Label value="L"/></Labels></Repeater>'
        '<Filter name="f" toName="dyn"/></View>'
    )
    assert parsed["dyn"]["dynamic_labels"] is True and parsed["dyn"]["labels"] == []
    assert parsed["api"]["dynamic_labels"] is True
    assert "dynamic_labels" not in parsed["notvar"]  # the SDK's regex accepts letters and _ only
    assert parsed["cond"]["conditionals"] == {"type": "label", "name": "PER"}
    assert parsed["lab_{{idx}}"]["regex"] == {"{{idx}}": ".*"}
    assert parsed["lab_{{idx}}"]["inputs"] == [
        {"type": "Image", "valueType": None, "value": "pages[{{idx}}].url"}
    ]
    assert "f" not in parsed


def test_label_without_value_is_skipped_and_bytes_accepted() -> None:
    parsed = parse_config(
        b'<View><Text name="t" value="$t"/><Labels name="l" toName="t"><Label/></Labels></View>'
    )
    assert parsed["l"]["labels"] == []


def _raises_fast(config: str, message: str) -> None:
    start = time.monotonic()
    with pytest.raises(LabelConfigError, match=message):
        parse_config(config)
    assert time.monotonic() - start < 1.0


def test_billion_laughs_rejected() -> None:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    config = f'<?xml version="1.0"?><!DOCTYPE v [<!ENTITY l0 "lol">{entities}]><View>&l9;</View>'
    _raises_fast(config, "DOCTYPE or ENTITY")


def test_external_entity_rejected() -> None:
    config = (
        '<!DOCTYPE v [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><View><Text name="t" value="&xxe;"/></View>'
    )
    _raises_fast(config, "DOCTYPE or ENTITY")


def test_undeclared_entity_is_malformed() -> None:
    _raises_fast('<View><Text name="t" value="&xxe;"/></View>', "line 1, column")


def test_deep_nesting_rejected() -> None:
    _raises_fast("<View>" * 10_000 + "</View>" * 10_000, "nested deeper than 100")


def test_huge_input_rejected_and_large_attribute_accepted() -> None:
    _raises_fast(f'<View><Text name="t" value="{"x" * 2 * 1024 * 1024}"/></View>', "larger than")
    parsed = parse_config(
        f'<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="{"y" * 500_000}"/></Choices></View>'
    )
    assert len(parsed["c"]["labels"][0]) == 500_000


def test_malformed_names_line_and_column() -> None:
    with pytest.raises(LabelConfigError, match=r"line 2, column \d+"):
        parse_config("<View>\n<Text name='t'></View>")
    with pytest.raises(LabelConfigError):
        parse_config(42)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(st.text(), st.text(alphabet="<>/=\"' !&;$ViewTextname", max_size=60)))
def test_arbitrary_text_only_raises_label_config_error(config: str) -> None:
    with contextlib.suppress(LabelConfigError):
        assert isinstance(parse_config(config), dict)


# ---------------------------------------------------------------- helpers
def test_get_single_tag_keys() -> None:
    assert get_single_tag_keys(parse_config(IMAGE_CHOICES), "Choices", "Image") == (
        "choice",
        "image",
        "image",
        ["Cat", "dog"],
    )


@pytest.mark.parametrize(
    ("config", "control", "obj", "message"),
    [
        (IMAGE_CHOICES, "Labels", "Image", 'control tag "<Choices>" but "<Labels>"'),
        (IMAGE_CHOICES, "Choices", "Text", "reads <Image> but <Text> is expected"),
        (
            IMAGE_CHOICES.replace("</View>", '<TextArea name="x" toName="image"/></View>'),
            "Choices",
            "Image",
            "found 2",
        ),
        (
            IMAGE_CHOICES.replace('toName="image"', 'toName="image,image"'),
            "Choices",
            "Image",
            "exactly one object",
        ),
    ],
)
def test_get_single_tag_keys_failures(config: str, control: str, obj: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        get_single_tag_keys(parse_config(config), control, obj)


MULTI = (
    '<View><Image name="img" value="$image"/><Text name="txt" value="$text"/>'
    '<Choices name="sentiment" toName="txt"><Choice value="Pos"/></Choices>'
    '<RectangleLabels name="boxes" toName="img"><Label value="Car"/></RectangleLabels>'
    '<Choices name="img_class" toName="missing,img"><Choice value="X"/></Choices></View>'
)


def test_get_first_tag_occurence() -> None:
    parsed = parse_config(MULTI)
    assert get_first_tag_occurence(parsed, "Choices", "Text") == ("sentiment", "txt", "text")
    assert get_first_tag_occurence(parsed, ("Labels", "RectangleLabels"), "Image") == (
        "boxes",
        "img",
        "image",
    )
    assert get_first_tag_occurence(parsed, "Choices", ("Image", "Video")) == ("img_class", "missing", "image")
    assert get_first_tag_occurence(parsed, "Choices", "Text", name_filter=lambda n: n.startswith("sent")) == (
        "sentiment",
        "txt",
        "text",
    )
    assert (
        get_first_tag_occurence(parsed, "Choices", "Text", to_name_filter=lambda n: n == "txt")[0]
        == "sentiment"
    )
    with pytest.raises(ValueError, match="No control tag of type Choices and object tag of type Audio"):
        get_first_tag_occurence(parsed, "Choices", "Audio")
    with pytest.raises(ValueError):
        get_first_tag_occurence(parsed, "Choices", "Text", to_name_filter=lambda n: n == "img")


def test_build_label_map() -> None:
    parsed = parse_config(
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
        '<Label value="Airplane"/><Label value="Car" predicted_values="car, truck"/>'
        '<Label value="Person"/><Label value="Dog"/></RectangleLabels></View>'
    )
    assert build_label_map(parsed, "label", ["car", "truck", "airplane", "Person", "bus"]) == {
        "car": "Car",
        "truck": "Car",
        "airplane": "Airplane",
        "Person": "Person",
    }
    # predicted_values match exactly; without a match the label's own name matches ignoring case
    assert build_label_map(parsed, "label", ["CAR"]) == {"CAR": "Car"}
    assert build_label_map(parsed, "label", ["DOG"]) == {"DOG": "Dog"}
    with pytest.raises(ValueError, match='no control tag named "nope"'):
        build_label_map(parsed, "nope", ["car"])
