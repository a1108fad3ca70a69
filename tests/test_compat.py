"""After ``import recbole_hnlm`` no loader (torch's, RecBole's, ours) runs code from a crafted checkpoint,
and the checkpoints RecBole and the plugin write still load."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import recbole_hnlm  # the compat shims
from recbole_hnlm.compat import CheckpointRefusedError, load_checkpoint
from tests.conftest import FAST


class RunsCode:
    """Unpickling it would run ``os.system`` (a shell command that creates ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class OpensFile:
    """Unpickling it would call ``open(marker, 'w')``: a builtin, not a module function."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture(params=["system", "open"])
def crafted(request, tmp_path):
    """A RecBole-shaped checkpoint (protocol 4, as RecBole saves) whose 'config' runs code when unpickled."""
    marker = tmp_path / "pwned"
    payload = RunsCode(marker) if request.param == "system" else OpensFile(marker)
    path = tmp_path / "model.pth"
    torch.save({"config": payload, "state_dict": {}, "other_parameter": None}, path, pickle_protocol=4)
    return path, marker


def test_plain_torch_load_refuses_a_crafted_pickle_after_import(crafted):
    path, marker = crafted
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not marker.exists()


def test_our_loader_refuses_it_naming_file_and_global(crafted):
    path, marker = crafted
    with pytest.raises(CheckpointRefusedError, match=re.escape(str(path)) + r".*(system|open)"):
        load_checkpoint(path)
    assert not marker.exists()


def test_recbole_call_sites_refuse_it(crafted):
    import recbole.quick_start
    import recbole.trainer.trainer

    path, marker = crafted
    with pytest.raises(CheckpointRefusedError):
        recbole.quick_start.load_data_and_model(str(path))
    with pytest.raises(CheckpointRefusedError):
        recbole.trainer.trainer.torch.load(str(path), map_location="cpu")  # resume / best-model reload
    from recbole_hnlm.quick_start import load_data_and_model

    with pytest.raises(CheckpointRefusedError):
        load_data_and_model(str(path))
    assert not marker.exists()


def test_recbole_model_modules_only_see_the_restricted_load():
    import recbole.model.general_recommender.neumf as neumf
    import recbole.trainer.trainer as trainer

    assert trainer.torch.load is load_checkpoint and neumf.torch.load is load_checkpoint
    assert trainer.torch.Tensor is torch.Tensor
    assert torch.load is not load_checkpoint and not getattr(torch.load, "_recbole_hnlm", False)


def test_allowed_data_still_loads(tmp_path):
    from recbole.utils.enum_type import ModelType

    obj = {
        "score": np.float64(0.25),
        "dtype": np.dtype("float32"),
        "array": np.arange(4.0),
        "type": ModelType.GENERAL,
        "device": torch.device("cpu"),
        "weights": torch.nn.Linear(2, 2).state_dict(),
        "path": Path("/tmp/x"),
    }
    torch.save(obj, tmp_path / "ok.pth", pickle_protocol=4)
    loaded = load_checkpoint(tmp_path / "ok.pth")
    assert loaded["score"] == 0.25 and loaded["type"] is ModelType.GENERAL
    np.testing.assert_array_equal(loaded["array"], obj["array"])
    assert torch.equal(loaded["weights"]["weight"], obj["weights"]["weight"])


def test_a_module_outside_recbole_models_is_not_even_imported(tmp_path):
    data = b"\x80\x02cantigravity\nfly\n."  # GLOBAL antigravity.fly; importing it opens a browser
    (tmp_path / "x.pkl").write_bytes(data)
    from recbole_hnlm.compat import _CheckpointUnpickler

    with open(tmp_path / "x.pkl", "rb") as handle, pytest.raises(CheckpointRefusedError, match="antigravity"):
        _CheckpointUnpickler(handle).load()
    import sys

    assert "antigravity" not in sys.modules


def test_trained_checkpoints_reload_through_every_loader(in_tmp, crafted):
    """run_hnlm's own evaluate(load_best_model=True) reads RecBole's checkpoint; both load_data_and_model
    read it too; and the trainer's best-model reload refuses a crafted file."""
    import recbole.quick_start
    from recbole.utils import get_trainer

    from recbole_hnlm.quick_start import load_data_and_model, run_hnlm

    record = run_hnlm("MF", "ml-100k", "rns", config_dict=dict(FAST))
    assert set(record["test_result"]) >= {"recall@10", "ndcg@20"}
    config, model, _, _, _, test_data = recbole.quick_start.load_data_and_model(record["checkpoint"])
    assert type(model).__name__ == "HNLMBPR"
    _, plugin_model, *_ = load_data_and_model(record["checkpoint"])
    assert torch.equal(plugin_model.user_embedding.weight, model.user_embedding.weight)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    again = trainer.evaluate(test_data, load_best_model=True, model_file=record["checkpoint"])
    assert again["ndcg@20"] == pytest.approx(record["test_result"]["ndcg@20"])
    path, marker = crafted
    with pytest.raises(CheckpointRefusedError):
        trainer.evaluate(test_data, load_best_model=True, model_file=str(path))
    with pytest.raises(CheckpointRefusedError):
        trainer.resume_checkpoint(str(path))
    assert not marker.exists()


def test_the_plugin_leaves_autograd_anomaly_mode_as_it_found_it():
    """RecBole's sine.py switches anomaly mode on when imported (E8), and the checkpoint shim imports it."""
    import subprocess
    import sys

    recbole_hnlm.bootstrap()
    assert "recbole.model.sequential_recommender.sine" in sys.modules
    assert not torch.is_anomaly_enabled()
    script = (
        "import torch; torch.autograd.set_detect_anomaly(True); import recbole_hnlm; "
        "recbole_hnlm.bootstrap(); print(torch.is_anomaly_enabled())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"  # a user's own setting is kept
