"""Dotted overrides parse to the field's type and name the key on error."""

import dataclasses
import json
from typing import Optional

import pytest

from tfwsar import config as config_lib


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    steps: int = 10
    flag: bool = False
    levels: tuple = (0.1, 0.2)
    name: str = "x"
    limit: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = Inner()
    variant: str = "a"


def test_overrides_parse_each_type():
    config = config_lib.override(Outer(), [
        "inner.rate=0.5", "inner.steps=7", "inner.flag=true", "inner.levels=0.3,0.4",
        "variant=b", "inner.limit=3"])
    assert config.inner == Inner(rate=0.5, steps=7, flag=True, levels=(0.3, 0.4), limit=3)
    assert config.variant == "b"
    assert config_lib.override(config, ["inner.limit=none"]).inner.limit is None


@pytest.mark.parametrize("assignment, message", [
    ("inner.bogus=1", "inner.bogus"), ("inner.steps=abc", "expected int"),
    ("inner.flag=maybe", "true or false"), ("variant.x=1", "not a section"), ("steps", "key=value")])
def test_bad_overrides_name_the_key(assignment, message):
    with pytest.raises(ValueError, match=message):
        config_lib.override(Outer(), [assignment])


def test_resolved_config_is_written_as_json(tmp_path):
    path = tmp_path / "run" / "config.json"
    config_lib.write_json(Outer(), str(path))
    assert json.loads(path.read_text())["inner"]["levels"] == [0.1, 0.2]
