"""The stage settings' dataclass defaults are the plugin yaml's: one value, however a stage is called."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from recbole_hnlm.config import PROPERTIES_DIR
from recbole_hnlm.stages.common import LLMSettings
from recbole_hnlm.stages.finetune import FinetuneSettings
from recbole_hnlm.stages.supervision import SupervisionSettings

PLUGIN_DEFAULTS = yaml.safe_load((PROPERTIES_DIR / "overall.yaml").read_text())
RECBOLE_KEYS = {"seed"}  # RecBole's own key, defaulted by RecBole's yaml


@pytest.mark.parametrize("settings", [LLMSettings, SupervisionSettings, FinetuneSettings])
def test_every_settings_field_defaults_to_the_plugin_yaml(settings):
    for field in dataclasses.fields(settings):
        if field.name in RECBOLE_KEYS:
            continue
        name = f"{settings.__name__}.{field.name}"
        assert field.name in PLUGIN_DEFAULTS, f"{name} has no default in overall.yaml"
        assert field.default == PLUGIN_DEFAULTS[field.name], name
