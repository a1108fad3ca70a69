"""Config helpers every stage shares: missing/None keys take the default; yes/no settings parse strictly."""

from __future__ import annotations

import dataclasses

import pytest

from recbole_hnlm.config import as_flag, config_value, settings_values


def test_config_value_default_for_missing_or_none():
    config = {"a": 0, "b": None, "c": "x"}
    assert [config_value(config, k, 7) for k in ("a", "b", "c", "d")] == [0, 7, "x", 7]
    assert config_value(None, "a", 3) == 3  # no config at all


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True), (False, False), ("false", False), ("False", False), ("no", False), (0, False),
        ("0", False), ("true", True), ("YES", True), (1, True), (" on ", True),
    ],
)  # fmt: skip
def test_as_flag_reads_yaml_and_command_line_spellings(value, expected):
    assert as_flag(value, "hnlm_use_profiles") is expected


def test_as_flag_rejects_anything_else_naming_the_key():
    with pytest.raises(ValueError, match="'hnlm_use_profiles': expected true or false, got 'maybe'"):
        as_flag("maybe", "hnlm_use_profiles")


def test_settings_values_types_each_found_field_like_its_default():
    @dataclasses.dataclass(frozen=True)
    class Settings:
        flag: bool = True
        size: int = 8
        rate: float = 0.5
        name: str | None = None
        kept: int = 3

    found = {"flag": "false", "size": "16", "rate": "1", "name": "x", "kept": None}
    values = settings_values(Settings, found.get)
    # a yes/no field is read as one ("false" is not truthy), numbers get their default's type, None is absent
    assert values == {"flag": False, "size": 16, "rate": 1.0, "name": "x"}
    assert isinstance(values["rate"], float) and Settings(**values).kept == 3
    with pytest.raises(ValueError, match="'flag': expected true or false"):
        settings_values(Settings, {"flag": "sometimes"}.get)
