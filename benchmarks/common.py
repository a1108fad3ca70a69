"""Shared helpers for the benchmark scripts: machine description, result files, interleaved timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

from recbole_hnlm.bench.harness import machine_info
from recbole_hnlm.config import make_config
from recbole_hnlm.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# The speed protocol of measured.md: LightGCN 64-d, 2 layers, batch 4096, one thread.
PROTOCOL = {
    "embedding_size": 64,
    "n_layers": 2,
    "train_batch_size": 4096,
    "learning_rate": 0.002,
    "reg_weight": 1e-4,
    "show_progress": False,
    "state": "ERROR",
    "seed": 2020,
}


def epoch_runner(model: str, dataset: str, config_dict: dict) -> Callable[[], object]:
    """Build ``model`` on ``dataset`` as RecBole's quick start does; return a function running one epoch."""
    config = make_config(model, dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    net = get_model(model)(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], model)(config, net)
    if config["train_neg_sample_args"].get("dynamic", False):
        train_data.get_model(net)  # what Trainer.fit does for RecBole's dynamic sampling
    net.train()
    return lambda: trainer._train_epoch(train_data, 0)


def _processor() -> str:
    """The CPU model name from /proc/cpuinfo, else what ``platform`` knows (often only the architecture)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The package's :func:`~recbole_hnlm.bench.harness.machine_info` plus what a speed result also needs."""
    return {
        **machine_info(),
        "processor": _processor(),
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def interleaved_epochs(
    runners: dict[str, Callable[[], object]], epochs: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time one epoch of each runner in turn, ``warmup + epochs`` rounds; warm-up rounds are dropped.

    Interleaving spreads any background load on a shared machine evenly over the contenders.
    """
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_idx in range(warmup + epochs):
        for name, run_epoch in runners.items():
            start = time.perf_counter()
            run_epoch()
            elapsed = time.perf_counter() - start
            if round_idx >= warmup:
                times[name].append(elapsed)
    return times


def write_results(name: str, payload: dict, markdown: str, folder: Path = RESULTS) -> None:
    """Write ``folder/<name>.json`` and ``folder/<name>.md``, each atomically, then print the markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / f"{name}.json", payload)
    atomic_write_text(folder / f"{name}.md", markdown)
    print(markdown)
