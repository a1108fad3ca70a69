"""DDP launch: option handling, the CPU (gloo) path through RecBole's trainer, and a 2-process run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import recbole_hnlm  # noqa: F401  (compat shims, model registry)
from recbole_hnlm.distributed import (
    DDPOptions,
    allow_cpu_ddp,
    check_gpu_ids,
    ddp_config_dict,
    free_port,
)


def test_ddp_config_dict_adds_recbole_keys_and_a_free_port():
    merged = ddp_config_dict({"epochs": 1}, DDPOptions(nproc=2))
    assert merged["epochs"] == 1
    assert merged["world_size"] == 2 and merged["nproc"] == 2 and merged["offset"] == 0
    assert merged["ip"] == "localhost" and 0 < merged["port"] < 65536
    assert "local_rank" not in merged  # set per rank; in the parent it would join the group
    # across machines the port must agree on every node: RecBole's default, unless given
    multi = ddp_config_dict({}, DDPOptions(nproc=2, world_size=4, group_offset=2))
    assert multi["port"] == 5678 and multi["world_size"] == 4 and multi["offset"] == 2


@pytest.mark.parametrize(
    "options, message",
    [
        (DDPOptions(nproc=0), "nproc must be >= 1"),
        (DDPOptions(nproc=2, world_size=3, group_offset=2), "must be <= world_size"),
    ],
)
def test_bad_launch_options_fail_early(options, message):
    with pytest.raises(ValueError, match=message):
        ddp_config_dict({}, options)


def test_launch_keys_are_not_config_keys():
    with pytest.raises(ValueError, match="world_size"):
        ddp_config_dict({"world_size": 2}, DDPOptions(nproc=2))


def test_nccl_gpu_ids_are_filled_or_refused_clearly():
    config = {"ddp_backend": "nccl", "gpu_id": "0"}
    overrides: dict = {}
    check_gpu_ids(config, overrides, 3)
    assert overrides["gpu_id"] == "0,1,2"  # RecBole's default "0" would trip its assert
    with pytest.raises(ValueError, match="one GPU per process"):
        check_gpu_ids({"ddp_backend": "nccl", "gpu_id": "1"}, {"gpu_id": "1"}, 2)
    untouched: dict = {}
    check_gpu_ids({"ddp_backend": "gloo", "gpu_id": "0"}, untouched, 4)  # CPUs: gpu_id is irrelevant
    assert untouched == {}
    with pytest.raises(ValueError, match="ddp_backend"):
        check_gpu_ids({"ddp_backend": "mpi", "gpu_id": "0"}, {}, 2)


def test_recbole_trainer_can_wrap_a_cpu_model_in_ddp():
    """RecBole passes device_ids=[local_rank], which DDP rejects for CPU modules; the patch drops it."""
    import recbole.trainer.trainer as recbole_trainer

    allow_cpu_ddp()
    allow_cpu_ddp()  # idempotent
    torch.distributed.init_process_group(
        "gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{free_port()}"
    )
    try:
        wrapped = recbole_trainer.DistributedDataParallel(torch.nn.Linear(3, 1), device_ids=[0])
        wrapped(torch.ones(2, 3)).sum().backward()
        assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_gloo_run_trains_one_epoch_and_rank0_returns_metrics(tmp_path, monkeypatch):
    from recbole_hnlm.quick_start import run_hnlm

    monkeypatch.chdir(tmp_path)  # RecBole writes log/ and the dataset cache beside the run
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    record = run_hnlm(
        "LightGCN",
        "ml-100k",
        "rns",
        config_dict={
            "epochs": 1,
            "show_progress": False,
            "ddp_backend": "gloo",
            "output_dir": str(tmp_path / "runs"),
            "train_batch_size": 8192,
        },
        ddp=DDPOptions(nproc=2),
    )
    assert record is not None
    assert record["ddp"] == {"world_size": 2, "backend": "gloo"}
    assert set(record["test_result"]) == {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}
    assert all(0.0 < v <= 1.0 for v in record["test_result"].values())
    run_dir = Path(record["run_dir"])
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["test_result"] == record["test_result"]
    checkpoints = list(run_dir.glob("*.pth"))
    assert len(checkpoints) == 1  # only global rank 0 saves; every rank tested this one
    assert Path(record["checkpoint"]) == checkpoints[0]
    assert os.environ.get("MASTER_PORT") is None  # nothing leaks into the parent's environment
