"""Parse Label Studio labeling configs into the SDK's ``parsed_label_config`` dict.

Stdlib only and safe against hostile XML: DOCTYPE/ENTITY declarations are refused before
parsing (so no entity expansion or external entity can happen), the input size and the
nesting depth are bounded, and every failure is a :class:`LabelConfigError`.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .exceptions import LabelConfigError, SDKNotInstalledError

logger = logging.getLogger(__name__)

MAX_CONFIG_CHARS = 1024 * 1024
MAX_DEPTH = 100

_LABEL_TAGS = {"Label", "Choice", "Relation"}
_NOT_CONTROL_TAGS = {"Filter"}
_DECLARATION = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_VARIABLE = re.compile(r"\$[A-Za-z_]+")

TagType = Union[str, Tuple[str, ...]]


class _DepthLimitedBuilder:
    """Parser target that builds an ElementTree and aborts past ``MAX_DEPTH`` levels."""

    def __init__(self) -> None:
        self._builder = ET.TreeBuilder()
        self._depth = 0

    def start(self, tag: str, attrib: Dict[str, str]) -> ET.Element:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise LabelConfigError(f"label config is nested deeper than {MAX_DEPTH} levels")
        return self._builder.start(tag, attrib)

    def end(self, tag: str) -> ET.Element:
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, data: str) -> None:
        self._builder.data(data)

    def doctype(self, name: str, pubid: Optional[str], system: Optional[str]) -> None:
        raise LabelConfigError("label config must not contain DOCTYPE or ENTITY declarations")

    def close(self) -> ET.Element:
        return self._builder.close()


def parse_xml(config: Union[str, bytes]) -> ET.Element:
    """Parse a labeling config safely into an ElementTree root element.

    Args:
        config: The config XML (bytes are decoded as UTF-8).

    Returns:
        The root element.

    Raises:
        LabelConfigError: Not text, too large, contains a DTD, too deep, or malformed.
    """
    if isinstance(config, (bytes, bytearray)):
        if len(config) > MAX_CONFIG_CHARS:
            raise LabelConfigError(f"label config is larger than {MAX_CONFIG_CHARS} bytes")
        try:
            config = bytes(config).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LabelConfigError(f"label config is not valid UTF-8: {exc}") from None
    if not isinstance(config, str):
        raise LabelConfigError(f"label config must be an XML string, not {type(config).__name__}")
    if len(config) > MAX_CONFIG_CHARS:
        raise LabelConfigError(f"label config is larger than {MAX_CONFIG_CHARS} characters")
    if _DECLARATION.search(config):
        raise LabelConfigError("label config must not contain DOCTYPE or ENTITY declarations")
    parser = ET.XMLParser(target=_DepthLimitedBuilder())
    try:
        parser.feed(config)
        return parser.close()
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        reason = str(exc).split(":")[0]
        raise LabelConfigError(
            f"label config is not well-formed XML: {reason} at line {line}, column {column}"
        ) from None
    except UnicodeError as exc:
        raise LabelConfigError(f"label config contains characters XML cannot hold: {exc}") from None


def _has_variable(value: str) -> bool:
    return _VARIABLE.fullmatch(value) is not None


def _is_control(tag: ET.Element) -> bool:
    return bool(tag.get("name") and tag.get("toName") and tag.tag not in _NOT_CONTROL_TAGS)


def _is_object(tag: ET.Element) -> bool:
    return bool(tag.get("name") and tag.get("value"))


def _control_info(tag: ET.Element, variables: List[str]) -> Dict[str, Any]:
    info: Dict[str, Any] = {"type": tag.tag, "to_name": tag.attrib["toName"].split(",")}
    for var in variables:
        for to_name in info["to_name"]:
            if var in to_name:
                info.setdefault("regex", {})[var] = ".*"
    conditionals: Dict[str, str] = {}
    if tag.get("perRegion") == "true":
        if tag.get("whenTagName"):
            conditionals = {"type": "tag", "name": tag.attrib["whenTagName"]}
        elif tag.get("whenLabelValue"):
            conditionals = {"type": "label", "name": tag.attrib["whenLabelValue"]}
        elif tag.get("whenChoiceValue"):
            conditionals = {"type": "choice", "name": tag.attrib["whenChoiceValue"]}
    if conditionals:
        info["conditionals"] = conditionals
    if _has_variable(tag.get("value", "")) or tag.get("apiUrl"):
        info["dynamic_labels"] = True
    return info


def parse_config(config: Optional[Union[str, bytes]]) -> Dict[str, Dict[str, Any]]:
    """Parse a labeling config the way label-studio-sdk's ``parse_config`` does.

    Args:
        config: The labeling config XML, or None/empty.

    Returns:
        A dict keyed by control tag name with ``type``, ``to_name``, ``inputs``, ``labels``,
        ``labels_attrs`` and, when present, ``regex``, ``conditionals``, ``dynamic_labels``.
        ``{}`` for an empty config.

    Raises:
        LabelConfigError: The config is not acceptable XML.
    """
    if not config or (isinstance(config, str) and not config.strip()):
        return {}
    root = parse_xml(config)
    parents = {child: parent for parent in root.iter() for child in parent}
    inputs: Dict[str, Dict[str, Any]] = {}
    outputs: Dict[str, Dict[str, Any]] = {}
    labels: Dict[str, Dict[str, Dict[str, str]]] = {}
    variables: List[str] = []
    for tag in root.iter():
        if "indexFlag" in tag.attrib:
            variables.append(tag.attrib["indexFlag"])
        if _is_control(tag):
            outputs[tag.attrib["name"]] = _control_info(tag, variables)
        elif _is_object(tag):
            inputs[tag.attrib["name"]] = {
                "type": tag.tag,
                "value": tag.attrib["value"].lstrip("$"),
                "valueType": tag.get("valueType"),
            }
        if tag.tag not in _LABEL_TAGS:
            continue
        parent = parents.get(tag)
        while parent is not None and parent.get("name") not in outputs:
            parent = parents.get(parent)
        label = tag.get("alias") or tag.get("value")
        if parent is not None and label:
            labels.setdefault(parent.attrib["name"], {})[label] = dict(tag.attrib)
    for name, info in outputs.items():
        info["inputs"] = []
        for to_name in info["to_name"]:
            if to_name in inputs:
                info["inputs"].append(inputs[to_name])
            else:
                logger.info("control %r names toName=%r, which is no object tag; ignored", name, to_name)
        attrs = labels.get(name, {})
        info["labels"] = list(attrs)
        info["labels_attrs"] = attrs
    return outputs


def _type_matches(actual: str, wanted: TagType) -> bool:
    return actual == wanted if isinstance(wanted, str) else actual in tuple(wanted)


def get_single_tag_keys(
    parsed_label_config: Dict[str, Any], control_type: str, object_type: str
) -> Tuple[str, str, str, List[str]]:
    """Keys of a config with exactly one control tag reading exactly one object tag.

    Args:
        parsed_label_config: The output of :func:`parse_config`.
        control_type: The expected control tag, as written in the config (``"Choices"``).
        object_type: The expected object tag (``"Image"``).

    Returns:
        ``(from_name, to_name, value, labels)``.

    Raises:
        AssertionError: The config does not have that single control/object pair.
    """
    count = len(parsed_label_config)
    assert count == 1, (
        f"this model needs a label config with exactly one control tag (<{control_type}>), found {count}"
    )
    from_name, info = next(iter(parsed_label_config.items()))
    assert info["type"] == control_type, (
        f'Label config has control tag "<{info["type"]}>" but "<{control_type}>" is expected for this model.'
    )
    assert len(info["to_name"]) == 1, (
        f'control tag "{from_name}" must name exactly one object in toName, found {info["to_name"]}'
    )
    assert len(info["inputs"]) == 1, f'control tag "{from_name}" must read exactly one object tag'
    actual = info["inputs"][0]["type"]
    assert actual == object_type, (
        f'control tag "{from_name}" reads <{actual}> but <{object_type}> is expected for this model'
    )
    return from_name, info["to_name"][0], info["inputs"][0]["value"], info["labels"]


def _input_names(info: Dict[str, Any]) -> Sequence[Optional[str]]:
    """Object names of ``info["inputs"]`` (unknown when some toName was dropped)."""
    if len(info["to_name"]) == len(info["inputs"]):
        return info["to_name"]
    return [None] * len(info["inputs"])


def get_first_tag_occurence(
    parsed_label_config: Dict[str, Any],
    control_type: TagType,
    object_type: TagType,
    name_filter: Optional[Callable[[str], bool]] = None,
    to_name_filter: Optional[Callable[[str], bool]] = None,
) -> Tuple[str, str, str]:
    """The first control of ``control_type`` reading an object of ``object_type``.

    Args:
        parsed_label_config: The output of :func:`parse_config`.
        control_type: Control tag type, or a tuple of accepted types.
        object_type: Object tag type, or a tuple of accepted types.
        name_filter: Optional predicate on the control's name.
        to_name_filter: Optional predicate on the object's name.

    Returns:
        ``(from_name, to_name, value)``.

    Raises:
        ValueError: No such pair in the config.
    """
    for from_name, info in parsed_label_config.items():
        if not _type_matches(info["type"], control_type):
            continue
        if name_filter is not None and not name_filter(from_name):
            continue
        for to_name, obj in zip(_input_names(info), info["inputs"]):
            if not _type_matches(obj["type"], object_type):
                continue
            to_name = to_name or info["to_name"][0]
            if to_name_filter is None or to_name_filter(to_name):
                return from_name, to_name, obj["value"]
    raise ValueError(
        f"No control tag of type {control_type} and object tag of type {object_type} found in label config"
    )


def build_label_map(
    parsed_label_config: Dict[str, Any], tag_name: str, model_names: Sequence[str]
) -> Dict[str, str]:
    """Map a model's class names to the labels of control ``tag_name``.

    A label's ``predicted_values`` attribute (comma-separated model names) is used first;
    without a match there, the label maps to the model name equal to it, else to a model
    name equal to it ignoring case.

    Args:
        parsed_label_config: The output of :func:`parse_config`.
        tag_name: Name of the control tag holding the labels.
        model_names: The class names the model predicts.

    Returns:
        ``{model_name: config_label}``.

    Raises:
        ValueError: The config has no control tag named ``tag_name``.
    """
    if tag_name not in parsed_label_config:
        raise ValueError(
            f'label config has no control tag named "{tag_name}" ({sorted(parsed_label_config)})'
        )
    names = list(model_names)
    by_lower = {name.lower(): name for name in reversed(names)}
    label_map: Dict[str, str] = {}
    for label, attrs in parsed_label_config[tag_name].get("labels_attrs", {}).items():
        matched = False
        for value in attrs.get("predicted_values", "").split(","):
            value = value.strip()
            if value and value in names:
                label_map[value] = label
                matched = True
        if matched:
            continue
        if label in names:
            label_map[label] = label
        elif label.lower() in by_lower:
            label_map[by_lower[label.lower()]] = label
    return label_map


# ------------------------------------------------------------------ label-studio-sdk (optional)
# The range the pre-generation hook writes into a generated requirements.txt when a script uses
# the SDK; Label Studio 1.23.2 itself installs label-studio-sdk 2.1.2.
SDK_REQUIREMENT = "label-studio-sdk>=2.1,<3"


def sdk_label_interface(config: Optional[str]) -> Any:
    """A ``label_studio_sdk.label_interface.LabelInterface`` of ``config`` (imported lazily).

    Raises:
        SDKNotInstalledError: label-studio-sdk is not installed.
        ValueError: No labeling config (the project has not sent one yet).
    """
    try:
        from label_studio_sdk.label_interface import LabelInterface
    except ImportError as exc:
        raise SDKNotInstalledError(
            f"self.label_interface needs the label-studio-sdk package ({exc}); install it with "
            f"pip install '{SDK_REQUIREMENT}' (or pip install 'lsml-runtime[sdk]')",
            name="label_studio_sdk",
        ) from None
    if not config or not str(config).strip():
        raise ValueError(
            "self.label_interface needs the project's labeling config, and none was sent yet "
            "(Label Studio sends it as 'schema' to /setup and 'label_config' to /predict)"
        )
    return LabelInterface(config=config)
