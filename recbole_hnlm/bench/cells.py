"""Grid cells: one cached `run_hnlm` run each (its key, its inputs, its store, the machine it ran on)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recbole_hnlm import methods
from recbole_hnlm.bench.arms import Arm
from recbole_hnlm.bench.settings import BenchSettings
from recbole_hnlm.io import atomic_write_json, fingerprint
from recbole_hnlm.stages.store_modes import store_mode, store_mode_of

CELL_VERSION = 1


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


def data_path_spellings(data_path: str | None) -> list[str | None]:
    """``data_path`` as given, absolute, and relative to the working directory: the spellings under which
    a cell may have keyed the same data folder (a grid run from another checkout, or with ``DATA`` set
    absolute, spells it differently, and its cells are no less finished)."""
    if not data_path:
        return [data_path]
    resolved = Path(data_path).resolve()
    spellings = [data_path, str(resolved)]
    with contextlib.suppress(ValueError):  # another drive: no relative spelling
        spellings.append(os.path.relpath(resolved))
    return list(dict.fromkeys(spellings))


def cell_keys(settings: BenchSettings, model: str, arm: Arm, seed: int, store: str | None) -> set[str]:
    """Every key the cell may carry: :func:`cell_key` under each of :func:`data_path_spellings`."""
    return {
        cell_key(dataclasses.replace(settings, data_path=spelling), model, arm, seed, store)
        for spelling in data_path_spellings(settings.data_path)
    }


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
        if not arm.needs_store:
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
        """The store of ``arm``'s cells on the split of ``seed``, built as ``train`` builds one
        (:func:`~recbole_hnlm.quick_start.build_run_config`)."""
        from recbole_hnlm.quick_start import build_run_config
        from recbole_hnlm.registry import resolve_model_name

        model_name, dataset = resolve_model_name(model), self.settings.dataset
        files = self.settings.config_files
        overrides = self.settings.cell_config(seed, arm.label)
        source = arm.source_dataset
        if source:
            if arm.sampler != methods.MIX_MODE:
                raise ValueError(
                    f"--samplers {arm.label}: @SRC (another dataset's embedder) needs the hnlm-mix sampler"
                )
            from recbole_hnlm.config import make_config
            from recbole_hnlm.stages.common import artifact_dir

            # the source dataset's adapter, beside this dataset's artefacts (a config says where they are)
            root = artifact_dir(make_config(model_name, dataset, files, overrides)).parent
            overrides["hnlm_embedder"] = str(root / source / "embedder")
        # the path as the pipeline returns it (relative to the working folder): it is part of the cell keys
        return Path(build_run_config(model_name, dataset, arm.sampler, None, files, overrides).store)


def _file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes (None when it does not exist here)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


# resolved values not recorded: the key holds the seed; paths and devices differ between machines and
# checkouts of the same run (the store and the config files are checked by content instead)
UNRECORDED = frozenset(
    {
        "seed",
        "data_path",
        "checkpoint_dir",
        "output_dir",
        "artifact_dir",
        "device",
        "gpu_id",
        "use_gpu",
        "local_rank",
        "world_size",
        "nproc",
        "offset",
        "ip",
        "port",
        "single_spec",
        "config_files",
    }
)


def _recordable(value: Any) -> bool:
    """A plain JSON value that is not a path."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return "/" not in value and "\\" not in value
    if isinstance(value, (list, tuple)):
        return all(_recordable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _recordable(v) for k, v in value.items())
    return False


def resolved_values(
    settings: BenchSettings, model: str, arm: Arm, seed: int, store: str | None
) -> dict[str, str]:
    """The config a cell's run resolves, every yaml default under the cell's overrides, as canonical JSON
    per key. The key holds only the overrides, so this is what notices a default changed since the cell
    ran (a sampler's, a model's, RecBole's)."""
    from recbole_hnlm.config import make_config
    from recbole_hnlm.quick_start import sampler_overrides
    from recbole_hnlm.registry import resolve_model_name

    overrides = {**settings.cell_config(seed, arm.label), **sampler_overrides(arm.sampler, store)}
    config = make_config(resolve_model_name(model), settings.dataset, settings.config_files, overrides)
    return {
        key: json.dumps(value, sort_keys=True)
        for key, value in sorted(config.final_config_dict.items())
        if key not in UNRECORDED and _recordable(value)
    }


def cell_inputs(
    settings: BenchSettings, store: str | None, resolved: dict[str, str] | None = None
) -> dict[str, Any]:
    """What a cell read besides its settings: the store's ``meta.json`` (rewritten whenever the store is
    rebuilt at the same path), the contents of the config files (the key has only their names) and, when
    given, the :func:`resolved_values` of its config."""
    inputs: dict[str, Any] = {
        "store_meta": _file_digest(Path(store) / "meta.json") if store else None,
        "config_files": {f: _file_digest(Path(f)) for f in settings.config_files or ()},
    }
    if resolved is not None:
        inputs["resolved"] = resolved
    return inputs


def inputs_changed(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The recorded inputs that differ now. An input absent here (a store not on this machine) cannot be
    checked and is taken as recorded; cells written before inputs were recorded are matched by key alone.
    Resolved values compare on the keys both sides have: a key added since changes no finished run."""
    if recorded is None:
        return []
    changed = []
    if current["store_meta"] is not None and current["store_meta"] != recorded.get("store_meta"):
        changed.append("store")
    for name, digest in current["config_files"].items():
        if digest is not None and digest != recorded.get("config_files", {}).get(name):
            changed.append(name)
    then, now = recorded.get("resolved") or {}, current.get("resolved") or {}
    changed += [
        f"{key} (was {then[key]}, now {now[key]})"
        for key in sorted(then.keys() & now.keys())
        if then[key] != now[key]
    ]
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
    if store is None and arm.needs_store:
        store = cached.get("negatives")
    if cached.get("key") not in cell_keys(settings, model, arm, seed, store):
        return None
    if store and arm.sampler == methods.MIX_MODE and settings.given_store(arm.label, seed) is None:
        # the key holds the store the cell recorded, not the mode: a cell whose store the pipeline would no
        # longer build (hnlm_store_mode, or its default, changed since) is stale
        mode = store_mode(settings.cell_config(seed, arm.label))
        if store_mode_of(store) != mode:
            print(f"[bench] stale {path.name}: its store is not a {mode} store", flush=True)
            return None
    recorded = cached.get("inputs")
    # resolving the config costs ~0.1 s: only for cells that recorded what to compare it with
    resolved = resolved_values(settings, model, arm, seed, store) if "resolved" in (recorded or {}) else None
    changed = inputs_changed(recorded, cell_inputs(settings, store, resolved))
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
        "inputs": cell_inputs(settings, store, resolved_values(settings, model, arm, seed, store)),
        "checkpoint": record.get("checkpoint"),
        "run_dir": record.get("run_dir"),
        "machine": machine_info(),
    }
    atomic_write_json(path, cell)
    return cell


def _floats(result: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in dict(result).items()}


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
