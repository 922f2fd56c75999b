"""Configuration: nested dataclasses, `key.path=value` overrides, and the resolved JSON in the workdir.

A recipe's `get_config()` returns a dataclass tree holding every setting of a run. Command-line
flags override single fields with dotted paths (`--set train.batch_size=8`), each value parsed to the
type of the field it replaces, and the resolved configuration is written to `workdir/config.json`
so that a run can be reproduced from its workdir alone.
"""

import dataclasses
import json
import typing

from tfwsar import files


def to_dict(config):
    """The configuration as plain JSON-ready dicts and lists."""
    return dataclasses.asdict(config)


def to_json(config):
    return json.dumps(to_dict(config), indent=2, sort_keys=True)


def write_json(config, path):
    """Writes the resolved configuration atomically (see tfwsar.files)."""
    files.write_json_atomically(path, to_dict(config), sort_keys=True)


def _parse_value(text, field_type, key):
    """Parses `text` into `field_type` (bool, int, float, str, tuples of these, or Optional)."""
    origin = typing.get_origin(field_type)
    if origin is typing.Union:  # Optional[X]
        if text.lower() in ("none", "null", ""):
            return None
        inner = [arg for arg in typing.get_args(field_type) if arg is not type(None)]
        return _parse_value(text, inner[0], key)
    if origin is tuple or field_type is tuple:
        # tuple[float, ...] gives its element type; a bare `tuple` holds numbers.
        element_type = typing.get_args(field_type)[0] if origin is tuple else float
        items = [item for item in text.replace(" ", "").split(",") if item]
        return tuple(_parse_value(item, element_type, key) for item in items)
    if field_type is bool:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"override {key}={text}: expected true or false")
    try:
        return field_type(text)
    except (TypeError, ValueError) as error:
        raise ValueError(f"override {key}={text}: expected {field_type.__name__}") from error


def override(config, assignments):
    """Returns a copy of `config` with each `dotted.key=value` assignment applied.

    Raises ValueError naming the key when it does not exist or the value does not parse.
    """
    for assignment in assignments:
        if "=" not in assignment:
            raise ValueError(f"override {assignment!r}: expected key=value")
        key, text = assignment.split("=", 1)
        config = _replace_path(config, key.strip().split("."), text.strip(), key)
    return config


def _replace_path(node, path, text, key):
    if not dataclasses.is_dataclass(node):
        raise ValueError(f"override {key}: {path[0]!r} is not a section")
    fields = {field.name: field for field in dataclasses.fields(node)}
    if path[0] not in fields:
        raise ValueError(f"override {key}: no setting {path[0]!r}; choose from {sorted(fields)}")
    current = getattr(node, path[0])
    if len(path) == 1:
        hints = typing.get_type_hints(type(node))
        value = _parse_value(text, hints[path[0]], key)
    else:
        value = _replace_path(current, path[1:], text, key)
    return dataclasses.replace(node, **{path[0]: value})
