"""Scale-out: DDP training through RecBole's own path (NCCL on GPUs, gloo on CPUs).

RecBole's ``run(..., nproc, world_size, ip, port, group_offset)`` starts ``nproc`` processes with
``torch.multiprocessing.spawn``; each one builds the config with ``local_rank`` set, which makes
``Config._init_device`` join the process group, and RecBole's trainer and dataloaders then wrap the
model in ``DistributedDataParallel`` and shard batches with a ``DistributedSampler``. This module
does the same for the plugin: every rank runs :func:`recbole_hnlm.training.train_and_evaluate`
on the plugin's :class:`~recbole_hnlm.config.HNLMConfig`, whose ``_init_device`` picks the backend
(:func:`recbole_hnlm.ddp.use_cuda`). Ray start-up (``init_ray``) lives in :mod:`recbole_hnlm.ray_compat`.

Beyond RecBole's launcher it

* picks a free port when one machine runs the whole group and no port is given;
* fills ``gpu_id`` with ``0..nproc-1`` for NCCL when it was left at RecBole's default ``"0"`` (RecBole
  asserts ``len(gpu_id.split(",")) >= nproc``) and fails early, naming the keys, when it cannot;
* makes every rank load the checkpoint global rank 0 saved (RecBole names it after each process's
  clock, so ranks could disagree), after a barrier (rank 0 may still be writing it);
* returns rank 0's result to the caller and re-raises a rank's error in the parent.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import torch

from recbole_hnlm import compat
from recbole_hnlm.ddp import barrier, share_checkpoint_path, use_cuda
from recbole_hnlm.ray_compat import init_ray, numpy_alias_hook

compat.apply()

__all__ = [
    "DDPOptions",
    "barrier",
    "check_gpu_ids",
    "ddp_config_dict",
    "free_port",
    "init_ray",
    "launch",
    "numpy_alias_hook",
    "share_checkpoint_path",
    "use_cuda",
]

DDP_KEYS = ("world_size", "ip", "port", "nproc", "offset", "local_rank")


@dataclass(frozen=True)
class DDPOptions:
    """RecBole's DDP launch options (``run_recbole.py --nproc --world_size --ip --port --group_offset``).

    ``nproc``: processes on this machine; ``world_size``: processes on all machines (-1: ``nproc``);
    ``ip``/``port``: the rendezvous address of global rank 0 (``port=None``: a free port on a single
    machine, RecBole's 5678 across machines); ``group_offset``: global rank of this machine's first process.
    """

    nproc: int = 1
    world_size: int = -1
    ip: str = "localhost"
    port: int | str | None = None
    group_offset: int = 0

    @property
    def enabled(self) -> bool:
        return self.nproc > 1 or self.world_size > 0

    def resolved_world_size(self) -> int:
        return self.world_size if self.world_size > 0 else self.nproc

    def validate(self) -> None:
        if self.nproc < 1:
            raise ValueError(f"nproc must be >= 1, got {self.nproc}")
        world = self.resolved_world_size()
        if self.group_offset < 0 or self.group_offset + self.nproc > world:
            raise ValueError(
                f"group_offset ({self.group_offset}) + nproc ({self.nproc}) must be <= world_size ({world})"
            )


def free_port() -> int:
    """A TCP port that was free a moment ago on this machine (for single-machine process groups)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ddp_config_dict(config_dict: dict[str, Any] | None, options: DDPOptions) -> dict[str, Any]:
    """``config_dict`` plus the keys RecBole's ``run()`` adds for DDP (not ``local_rank``: set per rank)."""
    options.validate()
    merged = dict(config_dict or {})
    overlap = [k for k in DDP_KEYS if k in merged]
    if overlap:
        raise ValueError(f"pass {', '.join(overlap)} as launch options (--nproc ...), not as config keys")
    port = options.port
    if port is None:
        single_machine = options.resolved_world_size() == options.nproc
        port = free_port() if single_machine else 5678
    merged.update(
        world_size=options.resolved_world_size(),
        ip=options.ip,
        port=int(port),
        nproc=options.nproc,
        offset=options.group_offset,
    )
    return merged


def check_gpu_ids(config: Any, config_dict: dict[str, Any], nproc: int) -> None:
    """For NCCL: make ``gpu_id`` list one GPU per local process, or fail with a clear message."""
    if not use_cuda({"ddp_backend": config["ddp_backend"], **config_dict}):
        return
    gpu_id = str(config["gpu_id"] if config["gpu_id"] is not None else "")
    ids = [g for g in gpu_id.split(",") if g.strip()]
    if len(ids) >= nproc:
        return
    if "gpu_id" not in config_dict and gpu_id == "0":
        config_dict["gpu_id"] = ",".join(str(k) for k in range(nproc))
        return
    raise ValueError(
        f"DDP with NCCL needs one GPU per process: nproc={nproc} but gpu_id={gpu_id!r}; "
        f"pass --gpu_id='{','.join(str(k) for k in range(nproc))}' (or --ddp_backend=gloo to train on CPUs)"
    )


def allow_cpu_ddp() -> None:
    """Let RecBole's trainer wrap CPU models in DDP (idempotent; called in every rank).

    ``AbstractTrainer.__init__`` passes ``device_ids=[local_rank]``, which ``DistributedDataParallel``
    rejects for a module on the CPU; there it must be None (gloo then all-reduces CPU tensors).
    """
    import recbole.trainer.trainer as recbole_trainer

    stock = recbole_trainer.DistributedDataParallel
    if getattr(stock, "_recbole_hnlm", False):
        return

    def distributed_data_parallel(module: torch.nn.Module, device_ids: Any = None, **kwargs: Any) -> Any:
        if all(p.device.type == "cpu" for p in module.parameters()):
            device_ids = None
        return stock(module, device_ids=device_ids, **kwargs)

    distributed_data_parallel._recbole_hnlm = True
    recbole_trainer.DistributedDataParallel = distributed_data_parallel


def _rank_main(
    local_rank: int,
    model: str,
    dataset: str,
    config_file_list: list[str] | None,
    config_dict: dict[str, Any],
    saved: bool,
    results: Any,
) -> None:
    """One rank: build the config (this joins the process group), train, evaluate, leave the group."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from recbole_hnlm.config import make_config
    from recbole_hnlm.plugin import bootstrap
    from recbole_hnlm.training import train_and_evaluate

    bootstrap()  # compat shims + model registry in the child process

    allow_cpu_ddp()
    config = make_config(model, dataset, config_file_list, {**config_dict, "local_rank": local_rank})
    try:
        result = train_and_evaluate(config, saved=saved, log_dir=config["checkpoint_dir"])
        if local_rank + config["offset"] == 0:
            group = {
                "world_size": torch.distributed.get_world_size(),
                "backend": torch.distributed.get_backend(),
            }
            results.put({**result, "ddp": group})
        # every rank past its last collective before any leaves: a gloo peer that closes its sockets while
        # another still talks aborts that one ("terminate called without an active exception", seen in CI)
        barrier()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def launch(
    model: str,
    dataset: str,
    config_file_list: list[str] | None,
    config_dict: dict[str, Any] | None,
    options: DDPOptions,
    *,
    saved: bool = True,
) -> dict[str, Any] | None:
    """Train with ``options.nproc`` processes on this machine; global rank 0's result, else None.

    ``model`` must be a registered model name (``HNLMLightGCN``; see ``registry.resolve_model_name``).
    The call blocks until every local process has finished; an error in any rank is raised here.
    """
    import torch.multiprocessing as mp

    config_dict = ddp_config_dict(config_dict, options)
    # RecBole's init_logger creates ./log/<model> with a check-then-mkdir that ranks would race on
    os.makedirs(os.path.join("log", model), exist_ok=True)
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(
        _rank_main,
        args=(model, dataset, config_file_list, config_dict, saved, results),
        nprocs=options.nproc,
        join=True,
    )
    if options.group_offset == 0:
        return results.get()
    return None
