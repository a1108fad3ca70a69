"""``recbole-hnlm bench``: the benchmark grid (models x samplers x seeds), its tables, tests and plots.

Every cell ``(model, sampler, seed k)`` is one :func:`~recbole_hnlm.quick_start.run_hnlm` run with seed
``base_seed + k`` (RecBole's seed drives both the random split and training, so cell k of every sampler
shares the same split: the runs are paired by seed). A finished cell is cached as
``<out>/<dataset>/cells/<model>-<label>-seed<k>.json`` (written atomically, with a fingerprint of the
settings that made it); a rerun skips finished cells, so an interrupted grid resumes where it stopped.

From the cells it writes ``<out>/<dataset>/table.md``, ``results.json`` and ``bars.png``: Recall@10/20 and
NDCG@10/20 as mean ± std over seeds, the relative gain over RNS, and a paired test (t-test or Wilcoxon
over seeds) of every sampler against the best baseline of that model and metric. ``--analyses`` adds the
per-group metrics and false-negative shares of :mod:`recbole_hnlm.bench.groups` (``groups.md``/``.png``,
``false_negatives.md``/``.png``) from the cells' checkpoints.

Samplers are written ``label:sampler`` when one sampler appears twice (``hnlm@toys:hnlm``); a store-based
sampler (``hnlm``, ``prompt``) takes its store from ``--negatives [label=]PATH`` (``{seed}`` in PATH is
replaced by the cell's seed), or else from :mod:`recbole_hnlm.pipeline`, which builds what is missing. A
label ``hnlm@SRC`` with no store uses the embedder fine-tuned on dataset SRC (pipeline key
``hnlm_embedder``): the generalisation setting, gathered in ``generalisation.md``.

``--cached_only`` trains nothing: the tables summarise the finished cells (each row says over how many
seeds) and list the cells that are missing; for a grid run in parts, or on several machines (each cell
records the machine it ran on). ``--run_seeds`` trains only the missing cells of the seeds it names, so
processes on separate cores can share one grid.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recbole_hnlm import methods
from recbole_hnlm.bench.significance import LEVEL, METHODS, mean_std, paired_test, relative_gain
from recbole_hnlm.io import atomic_write_json, atomic_write_text, fingerprint

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
STORE_SAMPLERS = methods.names(methods.STORE)
CELL_VERSION = 1
# Bumped when the analyses' definitions change, so cached ``*.analysis.json`` files are recomputed.
# 2: checkpoints are reloaded on the training split (split_seed), not on a split drawn from the seed.
ANALYSIS_VERSION = 2


@dataclass(frozen=True)
class Arm:
    """One row of the table: a label and the ``--sampler`` it runs."""

    label: str
    sampler: str

    @property
    def is_baseline(self) -> bool:
        return self.sampler not in STORE_SAMPLERS

    @property
    def source_dataset(self) -> str | None:
        """``SRC`` of a label ``hnlm@SRC`` (an embedder fine-tuned on another dataset)."""
        return self.label.split("@", 1)[1] if "@" in self.label else None


def parse_arms(text: str | Sequence[str]) -> list[Arm]:
    SAMPLERS = methods.names()
    items = text.split(",") if isinstance(text, str) else list(text)
    arms: list[Arm] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        label, _, sampler = item.rpartition(":") if ":" in item else (item, "", item)
        if sampler not in SAMPLERS:
            if "@" in sampler and sampler.split("@", 1)[0] in SAMPLERS:
                label, sampler = sampler, sampler.split("@", 1)[0]
            else:
                raise ValueError(
                    f"--samplers: unknown sampler {sampler!r} in {item!r}; known: {', '.join(SAMPLERS)}"
                )
        if any(a.label == label for a in arms):
            raise ValueError(f"--samplers: label {label!r} appears twice (write label:sampler)")
        arms.append(Arm(label, sampler))
    if not arms:
        raise ValueError("--samplers: no sampler given")
    return arms


def parse_negatives(values: Sequence[str] | None, arms: Sequence[Arm]) -> dict[str, str]:
    """``--negatives PATH`` (the one store-based sampler) or ``--negatives label=PATH`` (repeatable)."""
    stores: dict[str, str] = {}
    store_arms = [a.label for a in arms if not a.is_baseline]
    for value in values or []:
        label, sep, path = value.partition("=")
        if not sep:
            if len(store_arms) != 1:
                raise ValueError(
                    f"--negatives {value!r}: with {len(store_arms)} store-based samplers write label=PATH"
                )
            label, path = store_arms[0], value
        if label not in {a.label for a in arms}:
            raise ValueError(f"--negatives {value!r}: no sampler labelled {label!r} in --samplers")
        stores[label] = path
    return stores


def parse_arm_config(values: Sequence[str] | None, arms: Sequence[Arm]) -> dict[str, dict[str, str]]:
    """``--arm_config LABEL:KEY=VALUE`` (repeatable): a config override for one arm's cells only."""
    labels = {a.label for a in arms}
    per_arm: dict[str, dict[str, str]] = {}
    for value in values or []:
        label, colon, assignment = value.partition(":")
        key, equals, setting = assignment.partition("=")
        if not (colon and equals and key):
            raise ValueError(f"--arm_config {value!r}: write LABEL:KEY=VALUE")
        if label not in labels:
            raise ValueError(f"--arm_config {value!r}: no sampler labelled {label!r} in --samplers")
        per_arm.setdefault(label, {})[key] = setting
    return per_arm


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


# --- cells ------------------------------------------------------------------------------------------------
def cell_path(settings: BenchSettings, model: str, label: str, k: int) -> Path:
    safe = label.replace("/", "_").replace(":", "_")
    return settings.cells_folder / f"{model}-{safe}-seed{k}.json"


def cell_key(settings: BenchSettings, model: str, arm: Arm, seed: int, store: str | None) -> str:
    return fingerprint(
        {
            "version": CELL_VERSION,
            "dataset": settings.dataset,
            "model": model,
            "sampler": arm.sampler,
            "seed": seed,
            "config": settings.cell_config(seed, arm.label),
            "config_files": settings.config_files,
            "negatives": store,
        }
    )


def read_cell(path: Path, key: str | None = None) -> dict[str, Any] | None:
    """A finished cell (None if missing, unreadable or made with other settings, when ``key`` is given)."""
    try:
        cell = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if key is not None and cell.get("key") != key:
        return None
    return cell


def split_note(settings: BenchSettings) -> str:
    split = settings.split_seed()
    if split is None:
        return "each seed: its own random split and initialisation"
    return f"one split (split_seed {split}); each seed: its own initialisation and sampling"


class StoreResolver:
    """Stores of the store-based samplers: from ``--negatives``, else built by the pipeline, one per split."""

    def __init__(self, settings: BenchSettings) -> None:
        self.settings = settings
        self.cache: dict[tuple[str, int], str] = {}

    def __call__(self, arm: Arm, model: str, seed: int) -> str | None:
        if arm.label in self.settings.negatives:
            return self.settings.given_store(arm.label, seed)
        if arm.is_baseline:
            return None
        # A store depends on the split only: with a fixed `split_seed` one store serves every seed. Without
        # one, every seed has its own split, and the stores the pipeline builds (one folder per dataset)
        # would replace each other while the finished cells' analyses still read them.
        split = self.settings.split_seed(arm.label)
        if split is None:
            raise ValueError(
                f"--samplers {arm.label}: the pipeline builds one store per split; fix the split with "
                f"--split_seed=N (one store then serves every seed), or give per-seed stores with "
                f"--negatives {arm.label}=PATH-{{seed}}"
            )
        if (arm.label, split) not in self.cache:
            self.cache[(arm.label, split)] = str(self._build(arm, model, split))
        return self.cache[(arm.label, split)]

    def _build(self, arm: Arm, model: str, seed: int) -> Path:
        try:
            from recbole_hnlm import pipeline
        except ImportError:  # pragma: no cover - the pipeline module is optional
            raise ValueError(
                f"--samplers {arm.label}: pass its store with --negatives {arm.label}=PATH "
                "(recbole_hnlm.pipeline, which builds stores, is not available)"
            ) from None
        from recbole_hnlm.config import make_config
        from recbole_hnlm.registry import resolve_model_name
        from recbole_hnlm.stages.supervision import artifact_dir

        overrides = self.settings.cell_config(seed, arm.label)
        config = make_config(
            resolve_model_name(model), self.settings.dataset, self.settings.config_files, overrides
        )
        source = arm.source_dataset
        if source:
            if arm.sampler != "hnlm":
                raise ValueError(
                    f"--samplers {arm.label}: @SRC (another dataset's embedder) needs the hnlm sampler"
                )
            embedder = artifact_dir(config).parent / source / "embedder"
            config["hnlm_embedder"] = str(embedder)
        build = pipeline.ensure_hnlm_store if arm.sampler == "hnlm" else pipeline.ensure_prompt_store
        return build(config)


def _file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes (None when it does not exist here)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def cell_inputs(settings: BenchSettings, store: str | None) -> dict[str, Any]:
    """What a cell read besides its settings: the store's ``meta.json`` (rewritten whenever the store is
    rebuilt at the same path) and the contents of the config files (the key has only their names)."""
    return {
        "store_meta": _file_digest(Path(store) / "meta.json") if store else None,
        "config_files": {f: _file_digest(Path(f)) for f in settings.config_files or ()},
    }


def inputs_changed(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The recorded inputs that differ now. An input absent here (a store not on this machine) cannot be
    checked and is taken as recorded; cells written before inputs were recorded are matched by key alone."""
    if recorded is None:
        return []
    changed = []
    if current["store_meta"] is not None and current["store_meta"] != recorded.get("store_meta"):
        changed.append("store")
    for name, digest in current["config_files"].items():
        if digest is not None and digest != recorded.get("config_files", {}).get(name):
            changed.append(name)
    return changed


def finished_cell(settings: BenchSettings, model: str, arm: Arm, k: int) -> dict[str, Any] | None:
    """The cached cell if it was made with these settings and inputs (for a pipeline-built store: the one
    it names, unless that store was rebuilt since)."""
    path = cell_path(settings, model, arm.label, k)
    cached = read_cell(path)
    if cached is None:
        return None
    seed = settings.base_seed + k
    store = settings.given_store(arm.label, seed)
    if store is None and not arm.is_baseline:
        store = cached.get("negatives")
    if cached.get("key") != cell_key(settings, model, arm, seed, store):
        return None
    changed = inputs_changed(cached.get("inputs"), cell_inputs(settings, store))
    if changed:
        print(f"[bench] stale {path.name}: {', '.join(changed)} changed since it ran", flush=True)
        return None
    return cached


def run_cell(
    settings: BenchSettings,
    model: str,
    arm: Arm,
    k: int,
    stores: Callable[[Arm, str, int], str | None],
    runner: Callable[..., dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The cached result of one cell, running it first when it is missing or stale."""
    seed = settings.base_seed + k
    path = cell_path(settings, model, arm.label, k)
    cached = finished_cell(settings, model, arm, k)
    if cached is not None:
        print(f"[bench] cached {path.name}", flush=True)
        return cached
    store = stores(arm, model, seed)
    key = cell_key(settings, model, arm, seed, store)
    if runner is None:
        from recbole_hnlm.quick_start import run_hnlm as runner
    print(f"[bench] running {model} / {arm.label} ({arm.sampler}) / seed {seed} ...", flush=True)
    start = time.perf_counter()
    record = runner(
        model=model,
        dataset=settings.dataset,
        sampler=arm.sampler,
        negatives=store,
        config_file_list=settings.config_files,
        config_dict=settings.cell_config(seed, arm.label),
        saved=True,
    )
    if record is None:
        raise RuntimeError(f"run_hnlm returned no result for {path.name} (a DDP rank without global rank 0?)")
    cell = {
        "key": key,
        "dataset": settings.dataset,
        "model": model,
        "label": arm.label,
        "sampler": arm.sampler,
        "k": k,
        "seed": seed,
        "negatives": store,
        "test_result": _floats(record["test_result"]),
        "best_valid_result": _floats(record["best_valid_result"]),
        "fit_seconds": float(record.get("fit_seconds") or 0.0),
        "wall_seconds": time.perf_counter() - start,
        "missing_semantic_pairs": int(record.get("missing_semantic_pairs") or 0),
        "best_epoch": record.get("best_epoch"),
        "epochs_trained": record.get("epochs_trained"),
        "epoch_cap": record.get("epoch_cap"),
        "sampler_report": record.get("sampler_report") or {},
        "inputs": cell_inputs(settings, store),
        "checkpoint": record.get("checkpoint"),
        "run_dir": record.get("run_dir"),
        "machine": machine_info(),
    }
    atomic_write_json(path, cell)
    return cell


def _floats(result: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in dict(result).items()}


# --- summary ------------------------------------------------------------------------------------------------
def summarise(
    cells: Sequence[dict[str, Any]],
    models: Sequence[str],
    arms: Sequence[Arm],
    baseline: str = "rns",
    test: str = "ttest",
    metrics: Sequence[str] = METRICS,
) -> dict[str, Any]:
    """``{model: {label: {metric: {mean, std, values, seeds, gain, best_baseline, test}}}}`` from the cells.

    The best baseline of a model and metric is the baseline sampler (not ``hnlm``/``prompt``) with the
    highest mean; each other sampler is tested against it, paired on the seeds both have.
    """
    by_cell = {(c["model"], c["label"], c["seed"]): c for c in cells}
    summary: dict[str, Any] = {}
    for model in models:
        rows: dict[str, Any] = {}
        for arm in arms:
            seeds = sorted(s for (m, lbl, s) in by_cell if m == model and lbl == arm.label)
            if not seeds:
                continue
            row: dict[str, Any] = {"sampler": arm.sampler, "baseline": arm.is_baseline, "metrics": {}}
            for metric in metrics:
                values = [by_cell[(model, arm.label, s)]["test_result"][metric] for s in seeds]
                mean, std = mean_std(values)
                row["metrics"][metric] = {"mean": mean, "std": std, "values": values, "seeds": seeds}
            row["missing_semantic_pairs"] = max(
                by_cell[(model, arm.label, s)]["missing_semantic_pairs"] for s in seeds
            )
            rows[arm.label] = row
        for metric in metrics:
            ref = rows.get(baseline, {}).get("metrics", {}).get(metric, {}).get("mean")
            baselines = [lbl for lbl, r in rows.items() if r["baseline"]]
            best = max(baselines, key=lambda lbl: rows[lbl]["metrics"][metric]["mean"], default=None)
            for label, row in rows.items():
                entry = row["metrics"][metric]
                entry["gain_vs_" + baseline] = (
                    relative_gain(entry["mean"], ref) if ref is not None else math.nan
                )
                entry["best_baseline"] = best
                if best is None or label == best:
                    entry["test"] = None
                    continue
                other = rows[best]["metrics"][metric]
                shared = [s for s in entry["seeds"] if s in other["seeds"]]
                a = [entry["values"][entry["seeds"].index(s)] for s in shared]
                b = [other["values"][other["seeds"].index(s)] for s in shared]
                entry["test"] = paired_test(a, b, test).as_dict()
        summary[model] = rows
    return summary


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}%"


def _p(test: dict[str, Any] | None, is_best: bool) -> str:
    if test is None:  # the best baseline itself, or no baseline among the samplers to test against
        return "(best)" if is_best else "n/a"
    p = test.get("pvalue")
    if p is None:
        return "n/a"
    mark = "*" if p < LEVEL else ""
    return f"{p:.3f}{mark}"


def table_markdown(
    summary: dict[str, Any],
    settings: BenchSettings,
    metrics: Sequence[str] = METRICS,
    missing: Sequence[str] = (),
    machines: dict[str, int] | None = None,
) -> str:
    base = settings.baseline
    test_name = "t-test" if settings.test == "ttest" else "Wilcoxon signed-rank test"
    lines = [
        f"# {settings.dataset}: test metrics, mean ± std over {settings.seeds} seed(s)",
        "",
        f"Seeds {settings.base_seed}..{settings.base_seed + settings.seeds - 1} ({split_note(settings)}, "
        "shared by every sampler). Gain: relative to the mean of "
        f"`{base}`"
        + ("" if base in {a.label for a in settings.arms} else " (not among these samplers: no gains)")
        + f". p: two-sided paired {test_name} "
        f"over seeds against the best baseline of that model and metric (* p < {LEVEL}; `(best)` marks that "
        "baseline). Epochs: "
        + (str(settings.epochs) if settings.epochs is not None else "config default")
        + ". n: the seeds a row averages.",
        "",
    ]
    if machines:
        lines += [
            "Cells ran on: "
            + "; ".join(f"{name} ({n} cell{'s' if n != 1 else ''})" for name, n in machines.items())
            + ".",
            "",
        ]
    if missing:
        lines += [f"Not run ({len(missing)} cells, left out of the means): " + ", ".join(missing) + ".", ""]
    for model, rows in summary.items():
        lines += [f"## {model}", ""]
        header = (
            ["sampler", "n"]
            + [m for m in metrics]
            + [f"gain {m}" for m in metrics]
            + [f"p {m}" for m in metrics]
        )
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for label, row in rows.items():
            ms = row["metrics"]
            cells = [f"{ms[m]['mean']:.4f} ± {ms[m]['std']:.4f}" for m in metrics]
            gains = [_pct(ms[m].get("gain_vs_" + base)) for m in metrics]
            ps = [_p(ms[m]["test"], label == ms[m]["best_baseline"]) for m in metrics]
            name = label if label == row["sampler"] else f"{label} ({row['sampler']})"
            if row["missing_semantic_pairs"]:
                name += f" [{row['missing_semantic_pairs']} pairs w/o store]"
            n = str(len(ms[metrics[0]]["values"]))
            lines.append("| " + " | ".join([name, n, *cells, *gains, *ps]) + " |")
        best = {m: next(iter(rows.values()))["metrics"][m]["best_baseline"] for m in metrics} if rows else {}
        if any(best.values()):
            lines += ["", "Best baseline: " + ", ".join(f"{m} `{b}`" for m, b in best.items()), ""]
        else:
            lines += ["", "Best baseline: none (no baseline sampler among these rows)", ""]
    return "\n".join(lines) + "\n"


def generalisation_markdown(summary: dict[str, Any], settings: BenchSettings, metric: str) -> str | None:
    """Rows ``hnlm@SRC`` (embedder fine-tuned on SRC) next to in-domain ``hnlm`` and ``rns``, if any."""
    xfer = [a for a in settings.arms if a.source_dataset]
    if not xfer:
        return None
    lines = [
        f"# Generalisation on {settings.dataset}: embedder fine-tuned on another dataset ({metric})",
        "",
        "| model | sampler | embedder from | "
        + metric
        + f" | gain vs `{settings.baseline}` | gain vs in-domain hnlm |",
        "|---|---|---|---|---|---|",
    ]
    for model, rows in summary.items():
        home = rows.get("hnlm", {}).get("metrics", {}).get(metric, {}).get("mean")
        for arm in settings.arms:
            if arm.label not in rows or (arm.sampler != "hnlm" and arm.label != settings.baseline):
                continue
            e = rows[arm.label]["metrics"][metric]
            source = arm.source_dataset or (settings.dataset if arm.sampler == "hnlm" else "-")
            vs_home = relative_gain(e["mean"], home) if home is not None and arm.source_dataset else math.nan
            lines.append(
                f"| {model} | {arm.label} | {source} | {e['mean']:.4f} ± {e['std']:.4f} | "
                f"{_pct(e.get('gain_vs_' + settings.baseline))} | {_pct(vs_home)} |"
            )
    return "\n".join(lines) + "\n"


def _bar_panels(summary: dict[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    return {
        model: {
            m: {lbl: (r["metrics"][m]["mean"], r["metrics"][m]["std"]) for lbl, r in rows.items()}
            for m in metrics
        }
        for model, rows in summary.items()
    }


# --- analyses ------------------------------------------------------------------------------------------
def analyse_cells(settings: BenchSettings, cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Group metrics and false-negative shares per cell (cached beside it), then mean ± std over seeds."""
    from recbole_hnlm.bench.groups import analyse_checkpoint

    per: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in cells:
        path = cell_path(settings, cell["model"], cell["label"], cell["k"]).with_suffix(".analysis.json")
        key = fingerprint([cell["key"], ANALYSIS_VERSION, settings.fn_batches])
        cached = read_cell(path, key)
        if cached is None:
            if not cell.get("checkpoint") or not Path(cell["checkpoint"]).is_file():
                print(f"[bench] no checkpoint for {path.name}; skipped in the analyses", flush=True)
                continue
            print(f"[bench] analysing {path.name} ...", flush=True)
            cached = {
                "key": key,
                **analyse_checkpoint(cell["checkpoint"], fn_batches=settings.fn_batches),
            }
            atomic_write_json(path, cached)
        per.setdefault((cell["model"], cell["label"]), []).append(cached)
    out: dict[str, Any] = {}
    for (model, label), runs in per.items():
        entry: dict[str, Any] = {"groups": {}, "false_negatives": {}, "n": len(runs)}
        for axis in ("items", "users"):
            for group in runs[0]["groups"][axis]:
                for metric in runs[0]["groups"][axis][group]:
                    if metric == "n_users":
                        continue
                    vals = [r["groups"][axis][group][metric] for r in runs]
                    entry["groups"].setdefault(f"{axis}:{group}", {})[metric] = mean_std(vals)
        for kind in ("selected", "semantic"):
            shares = [
                r["false_negatives"][kind]["share"]
                for r in runs
                if r["false_negatives"][kind]["share"] is not None
            ]
            if shares:
                entry["false_negatives"][kind] = mean_std(shares)
        entry["false_negatives"]["synthetic"] = runs[0]["false_negatives"]["synthetic"]
        entry["sizes"] = runs[0]["groups"]["sizes"]
        out.setdefault(model, {})[label] = entry
    return out


def analyses_markdown(analysis: dict[str, Any], settings: BenchSettings) -> tuple[str, str]:
    metric = settings.plot_metric
    groups = ["items:all", "items:head", "items:tail", "users:sparse", "users:active"]
    g_lines = [
        f"# {settings.dataset}: {metric} by item-popularity and user-activity group (test split)",
        "",
        "Head: the 20% most-interacted items in training; tail: the rest (the metric counts only the "
        "positives in the group, on one full ranking over all items). Sparse users: the 25% with the "
        "fewest training interactions. Mean ± std over the n seeds whose checkpoints were analysed.",
        "",
    ]
    f_lines = [
        f"# {settings.dataset}: share of negatives that are false negatives",
        "",
        "A negative is false when the user interacts with it in the validation or test split; "
        f"{settings.fn_batches} training batches per checkpoint. Synthetic negatives (MixGCF, DENS) and "
        "adapted semantic negatives count as their nearest item (cosine) in the final item "
        "embeddings. Mean ± std over the n seeds whose checkpoints were analysed.",
        "",
        "| model | sampler | n | selected negative | adapted semantic negative |",
        "|---|---|---|---|---|",
    ]
    for model, rows in analysis.items():
        first = next(iter(rows.values()))["sizes"]
        g_lines += [
            f"## {model}",
            "",
            f"{first['head_items']} head items of {first['items']} "
            f"({100 * first['head_share_of_training']:.0f}% of training interactions); "
            f"{first['sparse_users']} sparse users of {first['users']} "
            f"(at most {first['sparse_max_interactions']} training interactions).",
            "",
            "| sampler | n | " + " | ".join(groups) + " |",
            "|" + "---|" * (len(groups) + 2),
        ]
        for label, entry in rows.items():
            vals = [entry["groups"].get(g, {}).get(metric, (math.nan, math.nan)) for g in groups]
            g_lines.append(
                f"| {label} | {entry['n']} | " + " | ".join(f"{m:.4f} ± {s:.4f}" for m, s in vals) + " |"
            )
            fn = entry["false_negatives"]
            sel = fn.get("selected")
            sem = fn.get("semantic")
            sel_text = "n/a" if sel is None else f"{100 * sel[0]:.2f}% ± {100 * sel[1]:.2f}"
            if sel is not None and fn.get("synthetic"):
                sel_text += " (nearest item)"
            sem_text = "-" if sem is None else f"{100 * sem[0]:.2f}% ± {100 * sem[1]:.2f}"
            f_lines.append(f"| {model} | {label} | {entry['n']} | {sel_text} | {sem_text} |")
        g_lines.append("")
    return "\n".join(g_lines) + "\n", "\n".join(f_lines) + "\n"


def plot_analyses(analysis: dict[str, Any], settings: BenchSettings) -> None:
    from recbole_hnlm.bench.plots import grouped_bars

    metric = settings.plot_metric
    groups = ["items:head", "items:tail", "users:sparse", "users:active"]
    panels = {
        model: {
            g: {lbl: e["groups"].get(g, {}).get(metric, (math.nan, 0.0)) for lbl, e in rows.items()}
            for g in groups
        }
        for model, rows in analysis.items()
    }
    grouped_bars(panels, settings.folder / "groups.png", f"{settings.dataset}: {metric} by group", metric)
    fn_panels = {
        model: {
            kind: {lbl: e["false_negatives"][kind] for lbl, e in rows.items() if kind in e["false_negatives"]}
            for kind in ("selected", "semantic")
        }
        for model, rows in analysis.items()
    }
    grouped_bars(
        fn_panels,
        settings.folder / "false_negatives.png",
        f"{settings.dataset}: false-negative share",
        "share",
    )


# --- the whole grid ------------------------------------------------------------------------------------
def run_bench(
    settings: BenchSettings, runner: Callable[..., dict[str, Any] | None] | None = None
) -> dict[str, Any]:
    """Run (or reuse) every cell, then write table.md, results.json, bars.png (and the analyses)."""
    if settings.test not in METHODS:
        raise ValueError(f"--test must be one of {', '.join(METHODS)}, got {settings.test!r}")
    if settings.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {settings.seeds}")
    seeds = settings.seed_values
    outside = sorted(set(settings.run_seeds or []) - set(seeds))
    if outside:
        raise ValueError(f"--run_seeds {outside} are not among the grid's seeds {seeds}")
    stores = StoreResolver(settings)
    cells = []
    missing: list[str] = []
    started = time.perf_counter()
    for k, seed in enumerate(seeds):  # seed outermost: an interrupted grid has finished whole seeds
        for model in settings.models:
            for arm in settings.arms:
                if settings.trains(seed):
                    cells.append(run_cell(settings, model, arm, k, stores, runner))
                    continue
                cell = finished_cell(settings, model, arm, k)
                if cell is None:
                    missing.append(f"{model}/{arm.label}/seed {seed}")
                else:
                    cells.append(cell)
    if missing:
        print(f"[bench] {len(missing)} cell(s) not run: {', '.join(missing)}", flush=True)
    summary = summarise(cells, settings.models, settings.arms, settings.baseline, settings.test)
    folder = settings.folder
    payload = {
        "settings": settings.describe(),
        "machine": machine_info(),
        "summary": summary,
        "missing_cells": missing,
        "cells": [{k: v for k, v in c.items() if k not in ("checkpoint", "run_dir")} for c in cells],
        "seconds": time.perf_counter() - started,
    }
    table = table_markdown(summary, settings, missing=missing, machines=cell_machines(cells))
    general = generalisation_markdown(summary, settings, settings.plot_metric)
    from recbole_hnlm.bench.plots import grouped_bars

    grouped_bars(_bar_panels(summary, METRICS), folder / "bars.png", f"{settings.dataset}: test metrics", "")
    if settings.analyses:
        analysis = analyse_cells(settings, cells)
        payload["analyses"] = analysis
        groups_md, fn_md = analyses_markdown(analysis, settings)
        atomic_write_text(folder / "groups.md", groups_md)
        atomic_write_text(folder / "false_negatives.md", fn_md)
        plot_analyses(analysis, settings)
    if general:
        atomic_write_text(folder / "generalisation.md", general)
    atomic_write_text(folder / "table.md", table)
    atomic_write_json(folder / "results.json", _json_safe(payload))
    print(table)
    print(
        f"[bench] wrote {folder / 'table.md'}, {folder / 'results.json'}, {folder / 'bars.png'}", flush=True
    )
    return payload


def cell_machines(cells: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many cells ran on each machine (cells written before machines were recorded: "unrecorded")."""
    counts: dict[str, int] = {}
    for cell in cells:
        m = cell.get("machine")
        if m:
            device = m.get("device") or ("CUDA GPU" if m.get("cuda") else "CPU")
            name = f"{device}, {m.get('cpu_count')} cores, torch {m.get('torch')}"
        else:
            name = "unrecorded"
        counts[name] = counts.get(name, 0) + 1
    return counts


def machine_info() -> dict[str, Any]:
    import os
    import platform

    import torch

    cuda = torch.cuda.is_available()
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": cuda,
        "device": torch.cuda.get_device_name(0) if cuda else "CPU",
    }


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --- command line --------------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (ml-100k is embedded)")
    parser.add_argument("--models", default="LightGCN,MF", help="comma-separated backbones")
    parser.add_argument(
        "--samplers",
        default="rns,dns",
        help="comma-separated samplers, each 'sampler' or 'label:sampler' (e.g. rns,dns,hnlm,hnlm@toys:hnlm)",
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="runs per cell: seeds base_seed .. base_seed+seeds-1"
    )
    parser.add_argument("--base_seed", type=int, default=2020)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per cell (default: config)")
    parser.add_argument("--data_path", default=None, help="folder holding <dataset>/ (or the dataset folder)")
    parser.add_argument("--out", default="benchmarks/results", help="results folder (<out>/<dataset>/...)")
    parser.add_argument("--runs_dir", default="runs/bench", help="where the cells' runs and checkpoints go")
    parser.add_argument(
        "--negatives",
        action="append",
        default=[],
        help="store of a store-based sampler: PATH or label=PATH (repeatable; {seed} in PATH: the seed)",
    )
    parser.add_argument(
        "--arm_config",
        action="append",
        default=[],
        help="one arm's config override: LABEL:KEY=VALUE (repeatable), e.g. prompt:semantic_missing=random",
    )
    parser.add_argument("--config_files", default=None, help="RecBole yaml config files, space separated")
    parser.add_argument("--baseline", default="rns", help="the label gains are relative to")
    parser.add_argument("--test", default="ttest", choices=METHODS, help="paired test over seeds")
    parser.add_argument(
        "--analyses",
        action="store_true",
        help="also group metrics and false-negative shares (from checkpoints)",
    )
    parser.add_argument("--fn_batches", type=int, default=4, help="training batches per false-negative check")
    parser.add_argument("--plot_metric", default="ndcg@20", help="metric of the group tables and plots")
    parser.add_argument(
        "--name",
        default=None,
        help="tables go to <out>/<name>/ (default: the dataset; cells stay per dataset)",
    )
    parser.add_argument(
        "--cached_only",
        action="store_true",
        help="train nothing: tables from the finished cells, listing the missing ones",
    )
    parser.add_argument(
        "--run_seeds",
        default=None,
        help="comma-separated seeds whose missing cells run here; the others' are only read (one grid "
        "split between processes, e.g. --run_seeds 2020 beside --run_seeds 2021,2022)",
    )
    parser.epilog = (
        "Any other --key=value is a RecBole/plugin config override for every cell, e.g. --embedding_size=32."
    )


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    arms = parse_arms(args.samplers)
    return BenchSettings(
        dataset=args.dataset,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        arms=arms,
        seeds=args.seeds,
        base_seed=args.base_seed,
        epochs=args.epochs,
        data_path=args.data_path,
        out=args.out,
        runs_dir=args.runs_dir,
        negatives=parse_negatives(args.negatives, arms),
        config_files=args.config_files.split() if args.config_files else None,
        overrides=dict(getattr(args, "overrides", None) or {}),
        arm_overrides=parse_arm_config(args.arm_config, arms),
        baseline=args.baseline,
        test=args.test,
        analyses=args.analyses,
        fn_batches=args.fn_batches,
        plot_metric=args.plot_metric,
        name=args.name,
        cached_only=args.cached_only,
        run_seeds=parse_seeds(args.run_seeds),
    )


def parse_seeds(text: str | None) -> list[int] | None:
    """``--run_seeds 2020,2021`` -> [2020, 2021]; an entry that is not an integer is an error naming it."""
    if text is None:
        return None
    seeds = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            seeds.append(int(part))
        except ValueError:
            raise ValueError(f"--run_seeds: {part!r} is not an integer seed") from None
    return seeds


def run(args: argparse.Namespace) -> int:
    run_bench(settings_from_args(args))
    return 0
