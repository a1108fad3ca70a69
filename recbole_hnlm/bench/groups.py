"""The paper's analyses on trained checkpoints: accuracy by item-popularity and user-activity group, and
the share of selected or generated negatives that are false negatives.

**Groups.** Items are split by their number of *training* interactions: the head is the top
``head_share`` (20%) of items, ranked by count (ties broken by the smaller internal id), the tail the rest.
Users are split by their number of training interactions: the sparse users are the bottom
``sparse_share`` (25%), ranked by count (ties broken by the smaller internal id), the others are "active".

**Per-group evaluation** is RecBole's full-sort protocol, batch by batch over RecBole's own
``FullSortEvalDataLoader``: ``model.full_sort_predict``, the padding item and the user's history
(training items for validation; training + validation items for test) set to ``-inf``, ``torch.topk``.
One top-K list per user over *all* items; an item group G then counts only the positives in G:
``Recall@K = |top-K ∩ P_u ∩ G| / |P_u ∩ G|`` and NDCG@K with the hits in G and the ideal DCG of
``min(|P_u ∩ G|, K)`` hits, averaged over the users with ``P_u ∩ G`` non-empty. With G = all items this is
exactly RecBole's Recall and NDCG (the tests check it against ``trainer.evaluate``). A user group averages
the per-user metrics over its users.

**False negatives.** A few training batches go through the model's own ``negative_sampler`` (the in-loss
samplers: RNS, DNS, DNS(M,N), AHNS, MixGCF, DENS) under ``no_grad``; a chosen item is a false negative
when the user interacts with it in the validation or test split. A synthetic negative (MixGCF, DENS)
counts as its nearest item (cosine) among the final item embeddings, and so does the adapted semantic
negative ``adapter(h)`` of a store-based sampler (``hnlm-mix``, ``prompt``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

METRICS = ("recall", "ndcg")
ITEM_GROUPS = ("all", "head", "tail")
USER_GROUPS = ("all", "sparse", "active")


# --- group splits -----------------------------------------------------------------------------------
def _top_share(counts: np.ndarray, share: float, *, largest: bool) -> np.ndarray:
    """Mask of the ``ceil(share * n)`` ids (1..n-1; 0 is padding) with the largest/smallest counts."""
    if not 0 < share < 1:
        raise ValueError(f"group share must be in (0, 1), got {share}")
    counts = np.asarray(counts)
    ids = np.arange(1, counts.size)
    if ids.size == 0:
        return np.zeros(counts.size, dtype=bool)
    key = -counts[1:] if largest else counts[1:]
    order = ids[np.lexsort((ids, key))]  # by count, then by id
    take = math.ceil(share * ids.size)
    mask = np.zeros(counts.size, dtype=bool)
    mask[order[:take]] = True
    return mask


def popularity_groups(item_counts: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """Boolean head mask over internal item ids: the ``head_share`` most-interacted items (id 0 excluded)."""
    return _top_share(item_counts, head_share, largest=True)


def activity_groups(user_counts: np.ndarray, sparse_share: float = 0.25) -> np.ndarray:
    """Boolean sparse-user mask over internal user ids: the ``sparse_share`` least active users (not id 0)."""
    return _top_share(user_counts, sparse_share, largest=False)


def training_counts(train_dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Training interactions per internal user id and per internal item id."""
    users = train_dataset.inter_feat[train_dataset.uid_field].numpy()
    items = train_dataset.inter_feat[train_dataset.iid_field].numpy()
    return (
        np.bincount(users, minlength=train_dataset.user_num),
        np.bincount(items, minlength=train_dataset.item_num),
    )


# --- per-user full-ranking metrics ------------------------------------------------------------------
def user_metrics(
    topk: torch.Tensor, positives: torch.Tensor, ks: Sequence[int], item_mask: torch.Tensor | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-user Recall@k and NDCG@k from a ``[B, K]`` top-K list and a ``[B, n_items]`` positive mask.

    ``item_mask`` (``[n_items]`` bool) restricts the positives (and so the hits) to an item group. Returns
    the metrics (``{"recall@10": [B], ...}``) and the users' group-positive counts ``[B]`` (rows with 0
    have NaN metrics).
    """
    pos = positives if item_mask is None else positives & item_mask.unsqueeze(0)
    hits = pos.gather(1, topk).float()  # [B, K]
    n_pos = pos.sum(dim=1)
    valid = n_pos > 0
    discount = 1.0 / torch.log2(torch.arange(2, topk.shape[1] + 2, dtype=torch.float))
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        hits_k = hits[:, :k]
        recall = hits_k.sum(dim=1) / n_pos.clamp(min=1)
        dcg = (hits_k * discount[:k]).sum(dim=1)
        ideal_len = n_pos.clamp(max=k)
        idcg = torch.cumsum(discount[:k], dim=0)[(ideal_len - 1).clamp(min=0)]
        ndcg = dcg / idcg
        nan = torch.full_like(recall, float("nan"))
        out[f"recall@{k}"] = torch.where(valid, recall, nan)
        out[f"ndcg@{k}"] = torch.where(valid, ndcg, nan)
    return out, n_pos


@torch.no_grad()
def full_sort_rankings(
    model: Any, eval_data: Any, k_max: int
) -> Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(user ids [B], top-K items [B, K], positive mask [B, n_items])`` per batch, ranked as RecBole does.

    Mirrors ``Trainer._full_sort_batch_eval``: scores from ``full_sort_predict``, item 0 and the history
    masked with ``-inf``, ``torch.topk``.
    """
    model.eval()
    n_items = eval_data._dataset.item_num
    device = next(model.parameters()).device
    uid_field = eval_data._dataset.uid_field
    for interaction, history_index, positive_u, positive_i in eval_data:
        interaction = interaction.to(device)
        scores = model.full_sort_predict(interaction).view(-1, n_items).float()
        scores[:, 0] = -math.inf
        if history_index is not None:
            scores[history_index] = -math.inf
        topk = torch.topk(scores, k_max, dim=-1).indices.cpu()
        positives = torch.zeros(scores.shape, dtype=torch.bool)
        positives[positive_u.cpu(), positive_i.cpu()] = True
        yield interaction[uid_field].cpu(), topk, positives


def group_metrics(
    model: Any,
    train_dataset: Any,
    eval_data: Any,
    ks: Sequence[int] = (10, 20),
    head_share: float = 0.2,
    sparse_share: float = 0.25,
) -> dict[str, Any]:
    """Recall@k / NDCG@k overall, by item group (head/tail) and by user group (sparse/active)."""
    user_counts, item_counts = training_counts(train_dataset)
    head = torch.from_numpy(popularity_groups(item_counts, head_share))
    tail = ~head
    tail[0] = False
    sparse = torch.from_numpy(activity_groups(user_counts, sparse_share))
    item_masks = {"all": None, "head": head, "tail": tail}
    per_item_group: dict[str, dict[str, list[torch.Tensor]]] = {g: {} for g in ITEM_GROUPS}
    user_ids: list[torch.Tensor] = []
    for users, topk, positives in full_sort_rankings(model, eval_data, max(ks)):
        user_ids.append(users)
        for group, mask in item_masks.items():
            metrics, _ = user_metrics(topk, positives, ks, mask)
            for name, values in metrics.items():
                per_item_group[group].setdefault(name, []).append(values)
    users = torch.cat(user_ids)
    user_masks = {
        "all": torch.ones_like(users, dtype=torch.bool),
        "sparse": sparse[users],
        "active": ~sparse[users],
    }
    result: dict[str, Any] = {"items": {}, "users": {}}
    for group in ITEM_GROUPS:
        values = {name: torch.cat(parts) for name, parts in per_item_group[group].items()}
        result["items"][group] = {name: _nanmean(v) for name, v in values.items()}
        result["items"][group]["n_users"] = int((~torch.isnan(next(iter(values.values())))).sum())
        if group == "all":
            for ugroup, umask in user_masks.items():
                result["users"][ugroup] = {name: _nanmean(v[umask]) for name, v in values.items()}
                result["users"][ugroup]["n_users"] = int(umask.sum())
    result["sizes"] = {
        "items": int(item_counts.size - 1),
        "head_items": int(head.sum()),
        "head_share_of_training": float(item_counts[head.numpy()].sum() / max(item_counts.sum(), 1)),
        "users": int(user_counts.size - 1),
        "sparse_users": int(sparse.sum()),
        "sparse_max_interactions": int(user_counts[sparse.numpy()].max()) if sparse.any() else 0,
    }
    return result


def _nanmean(values: torch.Tensor) -> float:
    values = values[~torch.isnan(values)]
    return float(values.mean()) if values.numel() else math.nan


# --- false negatives -----------------------------------------------------------------------------------
def heldout_keys(n_items: int, *datasets: Any) -> np.ndarray:
    """Sorted ``user * n_items + item`` keys of every interaction in ``datasets`` (valid and test splits)."""
    keys = []
    for ds in datasets:
        users = ds.inter_feat[ds.uid_field].numpy().astype(np.int64)
        items = ds.inter_feat[ds.iid_field].numpy().astype(np.int64)
        keys.append(users * n_items + items)
    return np.unique(np.concatenate(keys)) if keys else np.empty(0, dtype=np.int64)


def is_heldout(users: np.ndarray, items: np.ndarray, keys: np.ndarray, n_items: int) -> np.ndarray:
    users, items = np.broadcast_arrays(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64))
    return np.isin(users * n_items + items, keys)


def nearest_items(vectors: torch.Tensor, item_table: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Internal id (>= 1) of the item whose embedding has the highest cosine similarity with each vector."""
    table = torch.nn.functional.normalize(item_table.detach().float(), dim=-1)
    flat = vectors.detach().float().reshape(-1, vectors.shape[-1])
    out = []
    for start in range(0, flat.shape[0], chunk):
        sims = torch.nn.functional.normalize(flat[start : start + chunk], dim=-1) @ table.T
        sims[:, 0] = -math.inf
        out.append(sims.argmax(dim=1))
    ids = torch.cat(out) if out else torch.empty(0, dtype=torch.long)
    return ids.reshape(vectors.shape[:-1])


@torch.no_grad()
def false_negative_share(
    model: Any, train_data: Any, valid_data: Any, test_data: Any, n_batches: int = 4
) -> dict[str, Any]:
    """Share of the model's negatives (and of its adapted semantic negatives) that are held-out positives."""
    from recbole_hnlm.negatives import SEMANTIC_FIELD, SEMANTIC_MASK_FIELD
    from recbole_hnlm.negatives.base import NegativeContext

    if not hasattr(model, "negative_sampler"):
        raise TypeError(f"{type(model).__name__} has no in-loss negative sampler (not a plugin model)")
    model.eval()
    device = next(model.parameters()).device
    n_items = train_data._dataset.item_num
    keys = heldout_keys(n_items, valid_data._dataset, test_data._dataset)
    prop = model.propagate()
    counts = {"selected": [0, 0], "semantic": [0, 0]}
    synthetic = False
    for b, interaction in enumerate(train_data):
        if b >= n_batches:
            break
        interaction = interaction.to(device)
        users = interaction[model.USER_ID]
        pos = interaction[model.ITEM_ID]
        ctx = NegativeContext(
            interaction,
            users,
            pos,
            prop.user[users],
            prop.item[pos],
            prop,
            model.NEG_ITEM_ID,
            model.current_epoch,
        )
        negatives = model.negative_sampler(ctx)
        ids = negatives.ids
        if ids is None:
            synthetic = True
            ids = nearest_items(negatives.emb, prop.item)
        u = users.cpu().numpy()
        ids_np = ids.cpu().numpy()
        u_b = u if ids_np.ndim == 1 else u[:, None]
        hit = is_heldout(u_b, ids_np, keys, n_items)
        counts["selected"][0] += int(hit.sum())
        counts["selected"][1] += int(hit.size)
        adapter = getattr(model, "semantic_adapter", None)
        if adapter is not None and SEMANTIC_FIELD in interaction:
            mask = interaction[SEMANTIC_MASK_FIELD].bool()
            if bool(mask.any()):
                near = nearest_items(adapter(interaction[SEMANTIC_FIELD][mask]), prop.item).cpu().numpy()
                hit = is_heldout(u[mask.cpu().numpy()], near, keys, n_items)
                counts["semantic"][0] += int(hit.sum())
                counts["semantic"][1] += int(hit.size)
    result: dict[str, Any] = {"synthetic": synthetic, "batches": min(n_batches, len(train_data))}
    for kind, (fn, total) in counts.items():
        result[kind] = {"false_negatives": fn, "total": total, "share": fn / total if total else None}
    return result


def load_checkpoint(path: str) -> tuple[Any, Any, Any, Any, Any, Any]:
    """The plugin's ``load_data_and_model`` (the split rebuilt with ``split_seed``)."""
    from recbole_hnlm.quick_start import load_data_and_model

    return load_data_and_model(str(path))


def analyse_checkpoint(
    path: str,
    ks: Sequence[int] = (10, 20),
    head_share: float = 0.2,
    sparse_share: float = 0.25,
    fn_batches: int = 4,
) -> dict[str, Any]:
    """Group metrics on the test split and the false-negative shares of one trained checkpoint."""
    config, model, _dataset, train_data, valid_data, test_data = load_checkpoint(path)
    model.current_epoch = int(config["epochs"])
    return {
        "groups": group_metrics(model, train_data._dataset, test_data, ks, head_share, sparse_share),
        "false_negatives": false_negative_share(model, train_data, valid_data, test_data, fn_batches),
    }
