"""Config helpers every stage shares: missing/None keys take the default; yes/no settings parse strictly."""

from __future__ import annotations

import pytest

from recbole_hnlm.config import as_flag, config_value


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
