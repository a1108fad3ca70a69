"""What both the config (each rank joining its process group) and training need of DDP: the backend rule
and the checkpoint hand-over. A leaf module: :mod:`recbole_hnlm.distributed` launches the ranks on top of it.
"""

from __future__ import annotations

from typing import Any

import torch

DDP_BACKENDS = ("auto", "nccl", "gloo")


def use_cuda(config_dict: dict[str, Any]) -> bool:
    """Whether the ranks train on CUDA with NCCL (config key ``ddp_backend``: ``auto`` = NCCL with CUDA,
    gloo without); ``HNLMConfig._init_device`` and the launcher's ``gpu_id`` check both ask this."""
    backend = str(config_dict.get("ddp_backend") or "auto")
    if backend not in DDP_BACKENDS:
        raise ValueError(f"config key 'ddp_backend' must be auto, nccl or gloo, got {backend!r}")
    return backend == "nccl" or (backend == "auto" and torch.cuda.is_available())


def share_checkpoint_path(trainer: Any) -> None:
    """Give every rank the checkpoint file name of global rank 0 (the only rank that saves)."""
    if not torch.distributed.is_initialized():
        return
    name = [trainer.saved_model_file]
    torch.distributed.broadcast_object_list(name, src=0)
    trainer.saved_model_file = name[0]


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
