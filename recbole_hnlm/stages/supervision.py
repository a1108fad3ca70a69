"""HNLMRec step 3a: collaborative supervision for the embedder's fine-tuning.

A CF backbone trained with uniform negatives (``hnlm_cf_model``, default RecBole's LightGCN, for
``hnlm_cf_epochs`` epochs, selected on *validation*; the test split is never touched here) scores, for
``hnlm_sup_size`` sampled training interactions (u, i), ``hnlm_sup_candidates`` = M uniformly drawn items u
never interacted with; the collaborative hard negative j is the top-scored one (DNS), or with
``hnlm_sup_selection: ahns`` the one whose score is closest to ``β·(s_ui + α)^(p+1)`` (AHNS-style
adaptive hardness). Each triple becomes a fine-tuning example::

    query    = text of i (+ its profile) and u's profile      (the same builder inference uses)
    positive = text of j (+ its profile)                      (pulled toward: the hard negative)
    negative = text of i (+ its profile)                      (pushed away from: the interacted item)

CF embeddings serialised into the query (the paper's README format) are off by default
(``hnlm_query_cf_dims: 0``): a 64-d vector printed as text costs ~6 tokens per number, far beyond the
query length a CPU can afford (the reference code truncated its queries at 64 tokens anyway), and a
text model's tokenizer sees digits, not geometry. ``hnlm_query_cf_dims: k`` adds the first k dimensions
(2 decimals) of u's and i's CF embeddings for those who want the paper's format.

Output ``<artifact_dir>/<dataset>/supervision/`` (written atomically): ``triples.jsonl``, ``meta.json``
(fingerprints of the dataset, the settings, the profiles and the CF checkpoint), ``cf_embeddings.npz``
when CF dimensions are serialised. The trained CF checkpoint is cached in ``supervision_cf/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbole_hnlm.config_values import config_value, settings_values
from recbole_hnlm.data.splits import split_seed
from recbole_hnlm.io import (
    artefact_lock,
    atomic_directory,
    atomic_write_json,
    check_replaceable,
    fingerprint,
)
from recbole_hnlm.stages.common import training_view
from recbole_hnlm.stages.item_vectors import item_passage

SUPERVISION_DIR = "supervision"
CF_DIR = "supervision_cf"
SELECTIONS = ("dns", "dns-ui", "ahns")
SUPERVISION_FORMAT = "recbole-hnlm/supervision"


def legacy_supervision_meta(meta: dict[str, Any]) -> bool:
    """A supervision ``meta.json`` written before the ``format`` field existed."""
    return meta.get("stage") == "supervision" and "fingerprint" in meta


@dataclass(frozen=True)
class SupervisionSettings:
    """Config keys (the field names) that shape the fine-tuning set."""

    hnlm_cf_model: str = "LightGCN"
    hnlm_cf_epochs: int = 20
    hnlm_cf_checkpoint: str | None = None
    hnlm_sup_size: int | None = None
    hnlm_sup_per_user: int = 1
    hnlm_sup_candidates: int = 32
    hnlm_sup_selection: str = "dns-ui"
    hnlm_ahns_alpha: float = 0.0
    hnlm_ahns_beta: float = 1.0
    hnlm_ahns_p: float = 0.0
    hnlm_use_profiles: bool = False
    hnlm_query_cf_dims: int = 0
    hnlm_query_user_words: int = 24
    hnlm_item_profile_words: int = 16
    seed: int = 2020

    @classmethod
    def resolve(cls, config: Any, overrides: Mapping[str, Any] | None = None) -> SupervisionSettings:
        values = settings_values(cls, lambda name: (overrides or {}).get(name, config_value(config, name)))
        if values.get("hnlm_sup_size") is not None:
            values["hnlm_sup_size"] = int(values["hnlm_sup_size"])  # ~ (None) = per-user coverage
        if "seed" not in (overrides or {}):
            # the artefact belongs to the split, not to one training run: one store serves every seed
            values["seed"] = split_seed(config)
        settings = cls(**values)
        if settings.hnlm_sup_selection not in SELECTIONS:
            raise ValueError(
                f"config key 'hnlm_sup_selection' must be one of {SELECTIONS}, "
                f"got {settings.hnlm_sup_selection!r}"
            )
        return settings

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- query / passage text: ONE builder for supervision and inference ---------------------------------------


def _words(text: str, limit: int) -> str:
    words = " ".join(str(text).split()).split(" ")
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


@dataclass
class QueryBuilder:
    """Texts of items and users; ``query(u, i)`` and ``passage(j)`` are what the embedder sees.

    Users without a usable profile are described by their most recent training titles and items without
    one by their text fields only; both are counted in ``fallbacks`` (and reported), never hidden.
    """

    item_text: dict[str, str]
    user_text: dict[str, str]
    fallbacks: Counter = field(default_factory=Counter)
    profiles_fingerprint: str | None = None
    cf_user: dict[str, np.ndarray] | None = None
    cf_item: dict[str, np.ndarray] | None = None

    def passage(self, item: str) -> str:
        return self.item_text[item]

    def query(self, user: str, item: str) -> str:
        text = f"Item: {self.item_text[item]}\nUser: {self.user_text[user]}"
        if self.cf_user is not None and self.cf_item is not None:
            fmt = ",".join
            text += (
                f"\nUser embedding: [{fmt(f'{x:.2f}' for x in self.cf_user[user])}]"
                f"\nItem embedding: [{fmt(f'{x:.2f}' for x in self.cf_item[item])}]"
            )
        return text

    @classmethod
    def build(cls, view: Any, profiles_dir: Path | None, settings: SupervisionSettings) -> QueryBuilder:
        from recbole_hnlm.stages.profiles import ProfilesMissingError, checked_profiles_meta, usable_summaries

        item_profiles: dict[str, str] = {}
        user_profiles: dict[str, str] = {}
        profiles_fp = None
        if settings.hnlm_use_profiles:
            if profiles_dir is None:
                raise ProfilesMissingError("hnlm_use_profiles is set but no profiles folder was given")
            try:
                meta = checked_profiles_meta(profiles_dir, view)
            except ProfilesMissingError as err:
                raise ProfilesMissingError(f"{err} (or set hnlm_use_profiles: false)") from None
            profiles_fp = fingerprint([meta.get("dataset_fingerprint"), meta.get("config_fingerprint")])
            user_profiles, item_profiles = usable_summaries(profiles_dir)
        fallbacks: Counter = Counter()
        item_text: dict[str, str] = {}
        for token, record in view.items.items():
            info = item_passage(record)
            profile = item_profiles.get(token)
            if profile:
                info += ". " + _words(profile, settings.hnlm_item_profile_words)
            elif settings.hnlm_use_profiles:
                fallbacks["item_without_profile"] += 1
            item_text[token] = info
        user_text: dict[str, str] = {}
        for user, history in view.histories.items():
            profile = user_profiles.get(user)
            if profile:
                user_text[user] = _words(profile, settings.hnlm_query_user_words)
                continue
            if settings.hnlm_use_profiles:
                fallbacks["user_without_profile"] += 1
            titles = [view.items[t].title if t in view.items else t for t in reversed(history[-8:])]
            user_text[user] = _words("recently chose " + "; ".join(titles), settings.hnlm_query_user_words)
        return cls(item_text, user_text, fallbacks, profiles_fp)

    def attach_cf(self, folder: Path, dims: int) -> None:
        """Load the CF embeddings saved with the supervision set (only when ``hnlm_query_cf_dims > 0``)."""
        if dims <= 0:
            return
        data = np.load(folder / "cf_embeddings.npz", allow_pickle=False)
        self.cf_user = dict(zip(data["user_tokens"].tolist(), data["user"][:, :dims]))
        self.cf_item = dict(zip(data["item_tokens"].tolist(), data["item"][:, :dims]))


# --- CF backbone -----------------------------------------------------------------------------------------


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
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from recbole_hnlm.data.fingerprint import dataset_fingerprint

    cache = root / CF_DIR
    cfg = cf_config(config, settings, cache / "tmp")
    init_seed(split_seed(cfg), cfg["reproducibility"])
    dataset = create_dataset(cfg)
    train_data, valid_data, _test_data = data_preparation(cfg, dataset)
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
    conditioned on the positive), or AHNS-style adaptive hardness."""
    if settings.hnlm_sup_selection in ("dns", "dns-ui"):
        return cand_scores.argmax(dim=1)
    base = pos_scores + settings.hnlm_ahns_alpha
    target = settings.hnlm_ahns_beta * base.sign() * base.abs().pow(settings.hnlm_ahns_p + 1)
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


def supervision_fingerprint(view: Any, settings: SupervisionSettings, profiles_fp: str | None) -> str:
    return fingerprint([view.dataset_fingerprint, settings.as_dict(), profiles_fp])


def read_meta(folder: Path) -> dict[str, Any] | None:
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        return json.loads(meta_file.read_text())
    except ValueError:
        return None


def build_supervision(
    config: Any,
    root: Path,
    *,
    view: Any = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Write (or reuse, when its fingerprint matches) ``<root>/supervision``; returns the folder.

    Under the folder's lock: a concurrent run waits, then reuses it (and the CF cache's ``tmp`` folder,
    removed by whoever finishes training, is never pulled from under a run still training)."""
    with artefact_lock(root / SUPERVISION_DIR):
        return _build_supervision(config, root, view=view, progress=progress, force=force)


def _build_supervision(config: Any, root: Path, *, view: Any, progress: bool, force: bool) -> Path:
    settings = SupervisionSettings.resolve(config)
    view = view if view is not None else training_view(config)
    builder = QueryBuilder.build(view, root / "profiles", settings)
    out = root / SUPERVISION_DIR
    fp = supervision_fingerprint(view, settings, builder.profiles_fingerprint)
    meta = read_meta(out)
    if not force and meta is not None and meta.get("fingerprint") == fp and (out / "triples.jsonl").is_file():
        return out
    check_replaceable(out, SUPERVISION_FORMAT, legacy=legacy_supervision_meta)
    start = time.perf_counter()
    model, dataset, train, cf_info = train_cf(config, settings, root, progress=progress)
    from recbole_hnlm.data.fingerprint import dataset_fingerprint

    if dataset_fingerprint(dataset) != view.dataset_fingerprint:
        raise ValueError(
            f"the CF backbone {settings.hnlm_cf_model} loaded dataset {config['dataset']!r} with fingerprint "
            f"{dataset_fingerprint(dataset)}, the profiles/text view has {view.dataset_fingerprint}"
        )
    users, items, negatives, stats = mine(model, dataset, train, settings)
    uid, iid = dataset.uid_field, dataset.iid_field
    u_tok = dataset.id2token(uid, users).astype(str)
    i_tok = dataset.id2token(iid, items).astype(str)
    j_tok = dataset.id2token(iid, negatives).astype(str)
    cf_arrays = None
    if settings.hnlm_query_cf_dims > 0:
        user_e, item_e = cf_embeddings(model, dataset)
        cf_arrays = {
            "user": user_e[1:],
            "item": item_e[1:],
            "user_tokens": np.asarray(dataset.field2id_token[uid][1:]).astype(str),
            "item_tokens": np.asarray(dataset.field2id_token[iid][1:]).astype(str),
        }
        builder.cf_user = dict(zip(cf_arrays["user_tokens"].tolist(), cf_arrays["user"]))
        builder.cf_item = dict(zip(cf_arrays["item_tokens"].tolist(), cf_arrays["item"]))
        builder.cf_user = {k: v[: settings.hnlm_query_cf_dims] for k, v in builder.cf_user.items()}
        builder.cf_item = {k: v[: settings.hnlm_query_cf_dims] for k, v in builder.cf_item.items()}
    lines = []
    for u, i, j in zip(u_tok.tolist(), i_tok.tolist(), j_tok.tolist()):
        record = {
            "user": u,
            "item": i,
            "hard_negative": j,
            "query": builder.query(u, i),
            "positive": builder.passage(j),
            "negative": builder.passage(i),
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    meta = {
        "format": SUPERVISION_FORMAT,
        "stage": "supervision",
        "dataset": view.dataset,
        "dataset_fingerprint": view.dataset_fingerprint,
        "fingerprint": fp,
        "profiles_fingerprint": builder.profiles_fingerprint,
        "settings": settings.as_dict(),
        "cf": cf_info,
        "count": len(lines),
        "mining": stats,
        "text_fallbacks": dict(builder.fallbacks),
        "seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_directory(out, SUPERVISION_FORMAT, legacy=legacy_supervision_meta) as tmp:
        (tmp / "triples.jsonl").write_text("".join(lines), encoding="utf-8")
        if cf_arrays is not None:
            np.savez(tmp / "cf_embeddings.npz", **cf_arrays)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(
        f"[supervision] {len(lines)} triples "
        f"({settings.hnlm_sup_selection}, M={settings.hnlm_sup_candidates}) "
        f"-> {out}; text fallbacks {dict(builder.fallbacks)}"
    )
    return out


@torch.no_grad()
def cf_embeddings(model: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """User and item embedding matrices of the backbone (propagated ones for graph models)."""
    forward = getattr(model, "forward", None)
    try:
        user_e, item_e = forward()
    except TypeError:
        user_e, item_e = model.user_embedding.weight, model.item_embedding.weight
    return user_e.float().cpu().numpy(), item_e.float().cpu().numpy()


def read_triples(folder: Path) -> list[dict[str, str]]:
    path = folder / "triples.jsonl"
    out = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
                out.append({k: str(record[k]) for k in ("user", "item", "query", "positive", "negative")})
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}, line {number}: not a supervision triple ({err})") from err
    return out


def stage_config(args: argparse.Namespace) -> Any:
    """The plugin config of a stage command: model, dataset, config files and ``--key=value`` overrides."""
    from recbole_hnlm.config import make_config
    from recbole_hnlm.registry import resolve_model_name

    overrides = dict(getattr(args, "overrides", None) or {})
    parsed = {}
    for key, value in overrides.items():
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return make_config(resolve_model_name(args.model), args.dataset, args.config_files, parsed)


def artifact_dir(config: Any) -> Path:
    return Path(config_value(config, "artifact_dir", "artifacts")) / config["dataset"]
