"""The artefact folder ``<artifact_dir>/<dataset>`` is computed in one place, whoever asks for it."""

from __future__ import annotations

import argparse
from pathlib import Path

from recbole_hnlm.config_values import dataset_artifacts
from recbole_hnlm.models.rlmrec import profile_folder
from recbole_hnlm.stages.common import artifact_dir, artifact_root


def test_the_folder_is_the_configs_artifact_dir_and_dataset():
    config = {"artifact_dir": "out", "dataset": "ml-100k"}
    assert dataset_artifacts(config) == Path("out") / "ml-100k"
    assert artifact_dir(config) == Path("out") / "ml-100k"
    assert artifact_root(config, argparse.Namespace(), "ml-100k") == Path("out") / "ml-100k"


def test_an_unset_or_empty_artifact_dir_is_artifacts():
    for config in (
        {"dataset": "toys"},
        {"dataset": "toys", "artifact_dir": None},
        {"dataset": "toys", "artifact_dir": ""},
    ):
        assert dataset_artifacts(config) == Path("artifacts") / "toys"


def test_a_stage_flag_overrides_the_config():
    config = {"artifact_dir": "out", "dataset": "ml-100k"}
    args = argparse.Namespace(artifact_dir="flag")
    assert artifact_root(config, args, "toys") == Path("flag") / "toys"


def test_rlmrec_reads_the_profiles_from_the_same_folder():
    config = {"artifact_dir": "out", "dataset": "ml-100k", "profile_embeddings": None}
    assert profile_folder(config) == Path("out") / "ml-100k" / "profiles"
    config["profile_embeddings"] = "elsewhere"
    assert profile_folder(config) == Path("elsewhere")
