"""Config checks: run arguments that cannot train are refused before anything is written, yaml syntax
errors name the file and line, and unknown keys (typos) are warned about with the closest known key."""

from __future__ import annotations

import pytest

from recbole_hnlm import config_checks
from recbole_hnlm.cli import main
from recbole_hnlm.config import make_config
from recbole_hnlm.config_checks import RunSettingsError, describe_unknown
from recbole_hnlm.quick_start import run_hnlm
from tests.conftest import FAST


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "'epochs' must be at least 1, got 0"),
        ({"epochs": -1}, "'epochs' must be at least 1, got -1"),
        ({"epochs": "abc"}, "'epochs' must be a whole number, got 'abc'"),
        ({"train_batch_size": 0}, "'train_batch_size' must be at least 1"),
        ({"learning_rate": -0.1}, "'learning_rate' must be a number > 0"),
        ({"eval_step": 1.5}, "'eval_step' must be a whole number"),
    ],
)
def test_invalid_run_settings_are_refused_naming_the_key(overrides, message):
    with pytest.raises(RunSettingsError, match=message):
        make_config("HNLMLightGCN", "ml-100k", config_dict=overrides)


def test_valid_run_settings_pass():
    config = make_config("HNLMLightGCN", "ml-100k", config_dict={"epochs": 1, "eval_step": 0})
    assert config["epochs"] == 1 and config["eval_step"] == 0  # eval_step <= 0: RecBole never validates


@pytest.mark.parametrize("epochs", ["0", "-1", "abc"])
def test_cli_rejects_bad_epochs_before_writing_anything(epochs, in_tmp):
    with pytest.raises(RunSettingsError, match="'epochs'"):
        main(["train", "--sampler=hnlm", "--dataset=ml-100k", f"--epochs={epochs}", "--state=ERROR"])
    assert list(in_tmp.iterdir()) == []  # no run folder, no store, no log


def test_run_hnlm_with_zero_epochs_writes_nothing(in_tmp):
    with pytest.raises(RunSettingsError):
        run_hnlm("LightGCN", "ml-100k", "rns", config_dict={**FAST, "epochs": 0})
    assert list(in_tmp.iterdir()) == []


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("epochs: 2\nmetrics: [Recall, NDCG\nseed: 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mine\.yaml, line \d+, column \d+: yaml syntax error") as err:
        make_config("HNLMLightGCN", "ml-100k", config_file_list=[str(bad)])
    assert "<unicode string>" not in str(err.value)


def test_a_typo_is_warned_about_once_with_the_closest_key(capsys, monkeypatch):
    monkeypatch.setattr(config_checks, "_warned", set())
    overrides = {"semantic_alpah": 0.5, "epochs": 1, "load_col": None, "n_layers": 2, "my_own_key": 1}
    config = make_config("HNLMLightGCN", "ml-100k", config_dict=overrides)
    assert config.unknown_keys == {"my_own_key": None, "semantic_alpah": "semantic_alpha"}
    err = capsys.readouterr().err
    assert "2 unknown config keys" in err
    assert "'semantic_alpah' (did you mean 'semantic_alpha'?)" in err and "'my_own_key'" in err
    make_config("HNLMLightGCN", "ml-100k", config_dict=overrides)  # built again: not printed again
    assert "unknown config" not in capsys.readouterr().err


def test_keys_of_recbole_the_plugin_and_ddp_are_known(capsys, monkeypatch):
    monkeypatch.setattr(config_checks, "_warned", set())
    overrides = {
        "epochs": 1,
        "learner": "adam",  # RecBole's overall.yaml
        "benchmark_filename": None,  # RecBole's argument list
        "neg_sampler": "dns",  # the plugin's overall.yaml
        "eps": 0.1,  # a plugin model yaml (SimGCL)
        "nproc": 1,
        "world_size": 1,
        "offset": 0,
    }
    assert make_config("HNLMLightGCN", "ml-100k", config_dict=overrides).unknown_keys == {}
    assert "unknown config" not in capsys.readouterr().err


def test_describe_unknown_counts_the_keys():
    assert describe_unknown({"semantic_alpah": "semantic_alpha"}).startswith("1 unknown config key ")
