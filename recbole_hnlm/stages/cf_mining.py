"""The CF side of the supervision stage: train (or load) the CF backbone, then mine its hard negatives.

The backbone (``hnlm_cf_model``, trained for ``hnlm_cf_epochs`` epochs with uniform negatives, selected on
validation) is cached in ``<artifact_dir>/<dataset>/supervision_cf/`` under a fingerprint of the dataset,
model, epochs and seeds. :func:`mine` samples training pairs (u, i), draws ``hnlm_sup_candidates`` items u
never interacted with, and picks the hard negative by ``hnlm_sup_selection`` (dns, dns-ui or ahns).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbole_hnlm.config_values import config_value
from recbole_hnlm.data.splits import split_seed
from recbole_hnlm.io import atomic_write_json, fingerprint
from recbole_hnlm.negatives.hard import ahns_power, ahns_target
from recbole_hnlm.stages.supervision_settings import SupervisionSettings

CF_DIR = "supervision_cf"


def cf_config(config: Any, settings: SupervisionSettings, checkpoint_dir: Path) -> Any:
    """A config for the CF backbone with the run's dataset settings (same split, same vocabularies)."""
    from recbole_hnlm.config import make_config

    keep = set(config.parameters.get("Dataset", [])) if hasattr(config, "parameters") else set()
    keep |= {
        "data_path",
        "eval_args",
        "seed",
        "split_seed",
        "reproducibility",
        "use_gpu",
        "gpu_id",
        "show_progress",
    }
    keep |= {"state", "metrics", "topk", "valid_metric", "eval_batch_size", "text_fields", "review_field"}
    base = {k: config[k] for k in keep if config_value(config, k) is not None}
    data_path = Path(str(config["data_path"]))
    if data_path.name == config["dataset"]:  # RecBole appends the dataset name to data_path; undo it
        base["data_path"] = str(data_path.parent)
    base.update(epochs=settings.hnlm_cf_epochs, checkpoint_dir=str(checkpoint_dir), saved=True)
    base["seed"] = split_seed(config)  # the CF model serves the split, whatever run asks for it
    return make_config(settings.hnlm_cf_model, config["dataset"], config_dict=base)


def train_cf(config: Any, settings: SupervisionSettings, root: Path, *, progress: bool = True) -> tuple:
    """(model, dataset, train split, checkpoint info) of the CF backbone: cached, loaded or trained."""
    from recbole.utils import get_model, get_trainer, init_seed

    from recbole_hnlm.data.fingerprint import dataset_fingerprint
    from recbole_hnlm.training import split_data

    cache = root / CF_DIR
    cfg = cf_config(config, settings, cache / "tmp")
    dataset, train_data, valid_data, _test_data = split_data(cfg)  # the run's split, drawn as training does
    init_seed(cfg["seed"], cfg["reproducibility"])
    model = get_model(cfg["model"])(cfg, train_data._dataset).to(cfg["device"])
    key = {
        "dataset_fingerprint": dataset_fingerprint(dataset),
        "model": cfg["model"],
        "epochs": settings.hnlm_cf_epochs,
        "seed": cfg["seed"],
        "split_seed": split_seed(cfg),
        "external": settings.hnlm_cf_checkpoint,
    }
    cf_fp = fingerprint(key)
    saved = cache / "cf_model.pth"
    info_file = cache / "cf.json"
    source = None
    if settings.hnlm_cf_checkpoint:
        source = Path(settings.hnlm_cf_checkpoint)
    elif (
        saved.is_file()
        and info_file.is_file()
        and json.loads(info_file.read_text()).get("fingerprint") == cf_fp
    ):
        source = saved
    if source is None:
        start = time.perf_counter()
        trainer = get_trainer(cfg["MODEL_TYPE"], cfg["model"])(cfg, model)
        best, best_result = trainer.fit(train_data, valid_data, saved=True, show_progress=progress)
        shutil.move(trainer.saved_model_file, saved)
        shutil.rmtree(cache / "tmp", ignore_errors=True)
        atomic_write_json(
            info_file,
            {
                **key,
                "fingerprint": cf_fp,
                "best_valid_score": float(best),
                "best_valid_result": {k: float(v) for k, v in best_result.items()},
                "seconds": round(time.perf_counter() - start, 1),
            },
        )
        source = saved
    from recbole_hnlm.compat import load_checkpoint

    state = load_checkpoint(source, map_location=cfg["device"])  # may be a user's file: allow-listed only
    model.load_state_dict(state.get("state_dict", state))
    model.eval()
    return model, dataset, train_data._dataset, {"fingerprint": cf_fp, "checkpoint": str(source)}


@torch.no_grad()
def candidate_scores(model: Any, dataset: Any, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
    """``[B, K]`` scores of ``items[b, k]`` for ``users[b]`` via the model's full-sort prediction."""
    from recbole.data.interaction import Interaction

    n_items = int(dataset.item_num)
    chunk = max(1, (1 << 22) // n_items)
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(users), chunk):
        u = torch.as_tensor(users[start : start + chunk], dtype=torch.long, device=device)
        scores = model.full_sort_predict(Interaction({dataset.uid_field: u})).view(len(u), n_items)
        idx = torch.as_tensor(items[start : start + chunk], dtype=torch.long, device=device)
        out.append(scores.gather(1, idx).float().cpu())
    return torch.cat(out)


def select_negatives(
    pos_scores: torch.Tensor, cand_scores: torch.Tensor, settings: SupervisionSettings
) -> torch.Tensor:
    """Column of the chosen candidate per row: top-scored (DNS; for dns-ui the scores are already
    conditioned on the positive), or AHNS's adaptive hardness: the training sampler's own target formula
    (:func:`~recbole_hnlm.negatives.hard.ahns_target`) with the ``hnlm_ahns_*`` keys."""
    if settings.hnlm_sup_selection in ("dns", "dns-ui"):
        return cand_scores.argmax(dim=1)
    power = ahns_power(settings.hnlm_ahns_p, "hnlm_ahns_p")
    target = ahns_target(pos_scores, settings.hnlm_ahns_alpha, settings.hnlm_ahns_beta, power)
    return (cand_scores - target[:, None]).abs().argmin(dim=1)


def sample_pairs(keys: np.ndarray, n_items: int, settings: SupervisionSettings) -> np.ndarray:
    """The training pairs (sorted ``user * n_items + item`` keys) that get a triple: ``hnlm_sup_per_user``
    per user (all of a user's pairs when it has fewer) when ``hnlm_sup_size`` is unset, so every training
    user is covered; else a uniform sample of ``hnlm_sup_size`` pairs."""
    rng = np.random.default_rng(settings.seed)
    if settings.hnlm_sup_size is not None:
        take = rng.choice(len(keys), size=min(settings.hnlm_sup_size, len(keys)), replace=False)
        return keys[np.sort(take)]
    if settings.hnlm_sup_per_user < 1:
        raise ValueError(f"config key 'hnlm_sup_per_user' must be >= 1, got {settings.hnlm_sup_per_user}")
    users = keys // n_items
    order = np.lexsort((rng.random(len(keys)), users))  # a random order within each user's pairs
    starts = np.searchsorted(users[order], users[order], side="left")
    rank = np.arange(len(keys)) - starts
    return np.sort(keys[order[rank < settings.hnlm_sup_per_user]])


def mine(
    model: Any, dataset: Any, train: Any, settings: SupervisionSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """(users, items, hard negatives) as internal ids for the sampled training pairs.

    ``dns-ui`` ranks the candidates m by ``e_u·e_m + e_i·e_m``: the hard negative of (u, i) depends on the
    positive i too, not on the user alone (``dns``).
    """
    from recbole_hnlm.negatives.candidates import CandidateSampler

    uid, iid = dataset.uid_field, dataset.iid_field
    all_users = train.inter_feat[uid].numpy().astype(np.int64)
    all_items = train.inter_feat[iid].numpy().astype(np.int64)
    keys = sample_pairs(
        np.unique(all_users * int(dataset.item_num) + all_items), int(dataset.item_num), settings
    )
    users, items = keys // int(dataset.item_num), keys % int(dataset.item_num)
    sampler = CandidateSampler(all_users, all_items, int(dataset.item_num), settings.hnlm_sup_candidates)
    np.random.seed(settings.seed)  # the sampler draws from NumPy's global generator
    candidates = sampler.sample(users).numpy()
    pos = candidate_scores(model, dataset, users, items[:, None])[:, 0]
    scores = candidate_scores(model, dataset, users, candidates)
    selection = scores
    if settings.hnlm_sup_selection == "dns-ui":
        item_e = torch.from_numpy(cf_embeddings(model, dataset)[1])
        selection = scores + (item_e[candidates] * item_e[items][:, None, :]).sum(dim=-1)
    chosen = select_negatives(pos, selection, settings)
    negatives = candidates[np.arange(len(users)), chosen.numpy()]
    picked = scores[torch.arange(len(users)), chosen]
    stats = {
        "pairs": len(users),
        "users_covered": len(np.unique(users)),
        "training_users": len(np.unique(all_users)),
        "mean_pos_score": float(pos.mean()),
        "mean_negative_score": float(picked.mean()),
        "mean_candidate_score": float(scores.mean()),
        "negative_above_positive": float((picked > pos).float().mean()),
    }
    return users, items, negatives, stats


@torch.no_grad()
def cf_embeddings(model: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """User and item embedding matrices of the backbone (propagated ones for graph models)."""
    forward = getattr(model, "forward", None)
    try:
        user_e, item_e = forward()
    except TypeError:
        user_e, item_e = model.user_embedding.weight, model.item_embedding.weight
    return user_e.float().cpu().numpy(), item_e.float().cpu().numpy()
