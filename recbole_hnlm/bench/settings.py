"""The bench grid's settings (:class:`BenchSettings`), read from the command line or a yaml file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recbole_hnlm.bench.arms import Arm

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def normalise_data_path(data_path: str | None, dataset: str) -> str | None:
    """RecBole's ``data_path`` is the folder holding ``<dataset>/``; the dataset folder itself also works."""
    if not data_path:
        return None
    path = Path(data_path)
    if (not (path / dataset).is_dir() and (path / f"{dataset}.inter").is_file()) or (
        path.name == dataset and (path / f"{dataset}.train.inter").is_file() and not (path / dataset).is_dir()
    ):
        return str(path.parent)
    return str(path)


@dataclass
class BenchSettings:
    dataset: str
    models: list[str]
    arms: list[Arm]
    seeds: int = 3
    base_seed: int = 2020
    epochs: int | None = None
    data_path: str | None = None
    out: str = "benchmarks/results"
    runs_dir: str = "runs/bench"
    negatives: dict[str, str] = field(default_factory=dict)
    config_files: list[str] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    arm_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline: str = "rns"
    test: str = "ttest"
    analyses: bool = False
    fn_batches: int = 4
    plot_metric: str = "ndcg@20"
    name: str | None = None
    cached_only: bool = False
    run_seeds: list[int] | None = None

    def trains(self, seed: int) -> bool:
        """Whether a missing cell of ``seed`` is run here (else it is reported missing, as --cached_only
        does for every seed): ``--run_seeds`` splits one grid between processes without two of them
        running, and writing, the same cell."""
        return not self.cached_only and (self.run_seeds is None or seed in self.run_seeds)

    @property
    def seed_values(self) -> list[int]:
        """The grid's seeds: cell k runs with ``base_seed + k``."""
        return [self.base_seed + k for k in range(self.seeds)]

    @property
    def folder(self) -> Path:
        """Where the tables go: ``<out>/<name>`` (``name`` defaults to the dataset)."""
        return Path(self.out) / (self.name or self.dataset)

    @property
    def cells_folder(self) -> Path:
        """Cells are per dataset, shared by every grid on it (a second table reuses the first one's cells)."""
        return Path(self.out) / self.dataset / "cells"

    def given_store(self, label: str, seed: int) -> str | None:
        """The store ``--negatives`` gives ``label`` for ``seed`` (``{seed}`` filled in), if any."""
        path = self.negatives.get(label)
        return None if path is None else path.replace("{seed}", str(seed))

    def cell_config(self, seed: int, label: str) -> dict[str, Any]:
        """The config overrides of a cell: every cell's, then those of its arm (``label``)."""
        config: dict[str, Any] = {**self.overrides, **self.arm_overrides.get(label, {})}
        config.update(seed=seed, output_dir=self.runs_dir)
        if self.epochs is not None:
            config["epochs"] = self.epochs
        data_path = normalise_data_path(self.data_path, self.dataset)
        if data_path:
            config["data_path"] = data_path
        return config

    def split_seed(self, label: str | None = None) -> int | None:
        """The fixed split of ``label``'s cells (``--arm_config``, ``--key=value``, else the config files,
        the last file winning as in RecBole); None when each seed draws its own split."""
        value = {**self._files_config(), **self.overrides, **self.arm_overrides.get(label or "", {})}.get(
            "split_seed"
        )
        return None if value in (None, "None", "~") else int(value)

    def _files_config(self) -> dict[str, Any]:
        import yaml

        config: dict[str, Any] = {}
        for name in self.config_files or ():
            path = Path(name)
            if path.is_file():  # a missing file is RecBole's error to report when a cell runs
                loaded = yaml.safe_load(path.read_text()) or {}
                if not isinstance(loaded, dict):
                    raise ValueError(f"--config_files {name}: expected a yaml mapping of config keys")
                config.update(loaded)
        return config

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "models": self.models,
            "samplers": [f"{a.label}:{a.sampler}" for a in self.arms],
            "seeds": self.seed_values,
            "epochs": self.epochs,
            "data_path": self.data_path,
            "negatives": self.negatives,
            "config_files": self.config_files,
            "overrides": self.overrides,
            "arm_overrides": self.arm_overrides,
            "baseline": self.baseline,
            "test": self.test,
            "name": self.name or self.dataset,
            "cached_only": self.cached_only,
        }
