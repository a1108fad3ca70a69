"""RLMRec-Con and RLMRec-Gen: aligning CF embeddings with LLM profile embeddings, on every backbone.

Ren et al., "Representation Learning with Large Language Models for Recommendation", WWW 2024. Each user
and item has an LLM-written profile whose text embedding (``profiles`` stage with ``--embed``) is aligned
with the CF embeddings:

* **Con** (``alignment: rlmrec-con``): an MLP (hidden ``(D + d) // 2``, LeakyReLU) maps profile embeddings
  into the CF space; InfoNCE (temperature ``kd_temperature``, cosine) pulls each batch user, positive and
  negative towards its own mapped profile. Users are contrasted against every user's mapped profile,
  positives and negatives against the batch's (as RLMRec does). Weight ``kd_weight``.
* **Gen** (``alignment: rlmrec-gen``): a ``mask_ratio`` share of user/item ID embeddings is replaced by a
  trainable mask token before propagation (the whole training step runs on the masked graph); an MLP maps
  the propagated embeddings of the masked nodes back to their profile embeddings, scored with InfoNCE
  among the masked nodes (``recon_temperature``). Weight ``recon_weight``.

:class:`PluginLossMixin` builds the alignment when ``alignment`` is set, so ``--sampler=rlmrec-con``
works for MF, LightGCN, NGCF, SGL and SimGCL alike. Masking uses a parametrisation of the backbone's
``user_embedding``/``item_embedding`` weights, which every backbone's propagation reads.

Profile embeddings: a folder (``profile_embeddings``; default ``<artifact_dir>/<dataset>/profiles``) with
``user_embeddings.npy``/``user_tokens.txt`` and ``item_embeddings.npy``/``item_tokens.txt`` (one token per
line, in row order). Rows are aligned to RecBole's internal ids by token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from recbole_hnlm.config_values import dataset_artifacts, setting
from recbole_hnlm.models.losses import info_nce
from recbole_hnlm.negatives.base import NegativeContext, Negatives

ALIGNMENTS = ("rlmrec-con", "rlmrec-gen")
PROFILE_MISSING = ("error", "skip")


class ProfileError(ValueError):
    """Profile embeddings that cannot be aligned with the dataset."""


@dataclass
class ProfileMatrix:
    emb: torch.Tensor  # [n, D] aligned to internal ids; zero rows where no profile exists
    has: torch.Tensor  # [n] bool: the id has a profile (never the padding id 0)
    missing: int  # dataset ids (padding excluded) without a profile


def profile_folder(config: Any) -> Path:
    if config["profile_embeddings"]:
        return Path(config["profile_embeddings"])
    return dataset_artifacts(config) / "profiles"


def load_profiles(
    folder: str | Path, kind: str, id_tokens: Any, missing_policy: str = "error"
) -> ProfileMatrix:
    """Profile embeddings of ``kind`` ("user"/"item") aligned to internal ids (``id_tokens[i]``: token of i).

    Errors name the file: missing files, a matrix that is not 2-D, row/token count mismatch, duplicate or
    unknown tokens, non-finite values, and (``missing_policy: error``) dataset ids without a profile.
    """
    if missing_policy not in PROFILE_MISSING:
        raise ValueError(
            f"config key 'profile_missing' must be one of {PROFILE_MISSING}, got {missing_policy!r}"
        )
    folder = Path(folder)
    matrix_file, token_file = folder / f"{kind}_embeddings.npy", folder / f"{kind}_tokens.txt"
    for file in (matrix_file, token_file):
        if not file.is_file():
            raise ProfileError(
                f"{file}: not found. RLMRec needs profile embeddings: run `recbole-hnlm profiles --embed` "
                f"or set profile_embeddings to a folder with {kind}_embeddings.npy and {kind}_tokens.txt"
            )
    vectors = np.load(matrix_file, allow_pickle=False)
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise ProfileError(
            f"{matrix_file}: expected a 2-D float matrix, got shape {vectors.shape} {vectors.dtype}"
        )
    tokens = token_file.read_text(encoding="utf-8").splitlines()
    if len(tokens) != len(vectors):
        raise ProfileError(
            f"{token_file} lists {len(tokens)} tokens but {matrix_file} has {len(vectors)} rows"
        )
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise ProfileError(
            f"{matrix_file}: {bad.size} rows with NaN/inf values, e.g. row {bad[0]} ({tokens[bad[0]]!r})"
        )
    index = {str(token): i for i, token in enumerate(id_tokens) if i > 0}
    ids = np.array([index.get(token, -1) for token in tokens], dtype=np.int64)
    unknown = [tokens[k] for k in np.flatnonzero(ids < 0)]
    if unknown:
        raise ProfileError(
            f"{token_file}: {len(unknown)} {kind} tokens are not in the dataset, e.g. {unknown[:5]}; the "
            "profiles were made for another dataset or filtering"
        )
    if len(np.unique(ids)) != len(ids):
        raise ProfileError(f"{token_file}: duplicate {kind} tokens")
    n = len(id_tokens)
    emb = torch.zeros(n, vectors.shape[1], dtype=torch.float32)
    emb[torch.from_numpy(ids)] = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
    has = torch.zeros(n, dtype=torch.bool)
    has[torch.from_numpy(ids)] = True
    missing = n - 1 - len(ids)
    if missing:
        absent = [str(id_tokens[i]) for i in np.flatnonzero(~has.numpy())[1:6]]
        message = f"{missing} of {n - 1} {kind}s have no profile embedding in {matrix_file}, e.g. {absent}"
        if missing_policy == "error":
            raise ProfileError(
                message + "; set profile_missing: skip to leave them out of the alignment loss"
            )
        getLogger().warning(message + "; they are left out of the alignment loss (profile_missing: skip)")
    return ProfileMatrix(emb=emb, has=has, missing=missing)


def profile_mlp(d_in: int, d_out: int) -> nn.Sequential:
    hidden = (d_in + d_out) // 2
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU(), nn.Linear(hidden, d_out))


class ProfileAlignment(nn.Module):
    """Base: holds the aligned profile matrices as (non-persistent) buffers."""

    name: str

    def __init__(self, config: Any, users: ProfileMatrix, items: ProfileMatrix) -> None:
        super().__init__()
        if users.emb.shape[1] != items.emb.shape[1]:
            raise ProfileError(
                f"user profile embeddings are {users.emb.shape[1]}-d but item ones are "
                f"{items.emb.shape[1]}-d; embed both with the same model"
            )
        self.profile_dim = users.emb.shape[1]
        self.register_buffer("user_profiles", users.emb, persistent=False)
        self.register_buffer("item_profiles", items.emb, persistent=False)
        self.register_buffer("user_has", users.has, persistent=False)
        self.register_buffer("item_has", items.has, persistent=False)
        self.missing = {"user": users.missing, "item": items.missing}

    @contextmanager
    def masking(self) -> Iterator[None]:
        yield

    def loss(self, ctx: NegativeContext, negatives: Negatives) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ContrastiveAlignment(ProfileAlignment):
    """RLMRec-Con: InfoNCE between CF embeddings and MLP-mapped profile embeddings."""

    name = "rlmrec-con"

    def __init__(self, config: Any, users: ProfileMatrix, items: ProfileMatrix, dim: int) -> None:
        super().__init__(config, users, items)
        self.weight = float(config["kd_weight"])
        self.temperature = float(config["kd_temperature"])
        self.encoder = profile_mlp(self.profile_dim, dim)
        # position of each user among the users with a profile (the columns of the anchor InfoNCE)
        self.register_buffer("user_column", torch.cumsum(users.has.long(), 0) - 1, persistent=False)

    def _items_term(self, emb: torch.Tensor, ids: torch.Tensor) -> torch.Tensor | None:
        keep = self.item_has[ids]
        if not bool(keep.any()):
            return None
        return info_nce(emb[keep], self.encoder(self.item_profiles[ids[keep]]), self.temperature)

    def loss(self, ctx: NegativeContext, negatives: Negatives) -> torch.Tensor:
        terms = []
        keep = self.user_has[ctx.users]
        if bool(keep.any()):
            mapped_users = self.encoder(self.user_profiles[self.user_has])
            anchors = F.normalize(ctx.user_e[keep], dim=-1)
            logits = anchors @ F.normalize(mapped_users, dim=-1).T / self.temperature
            target = self.user_column[ctx.users[keep]]
            terms.append(F.cross_entropy(logits, target))
        terms.append(self._items_term(ctx.pos_e, ctx.pos_items))
        for column in negatives.columns():
            term = None if column.ids is None else self._items_term(column.emb, column.ids)
            if term is not None:  # synthetic negatives (MixGCF, DENS) have no profile
                terms.append(term / negatives.per_row)
        kept = [t for t in terms if t is not None]
        if not kept:
            return ctx.user_e.sum() * 0.0
        return self.weight * sum(kept)


class _MaskRows(nn.Module):
    """Parametrisation of an embedding weight: rows in ``rows`` replaced by ``token`` while set."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: torch.Tensor | None = None
        self.token: torch.Tensor | None = None

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.rows is None or self.rows.numel() == 0:
            return weight
        return weight.index_put((self.rows,), self.token.expand(self.rows.numel(), -1))


class GenerativeAlignment(ProfileAlignment):
    """RLMRec-Gen: mask ID embeddings, propagate, reconstruct the masked nodes' profile embeddings."""

    name = "rlmrec-gen"

    def __init__(
        self, config: Any, users: ProfileMatrix, items: ProfileMatrix, dim: int, model: nn.Module
    ) -> None:
        super().__init__(config, users, items)
        self.weight = float(config["recon_weight"])
        self.temperature = float(config["recon_temperature"])
        self.ratio = float(config["mask_ratio"])
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"config key 'mask_ratio' must be in (0, 1), got {self.ratio}")
        ego_dim = model.user_embedding.weight.shape[1]
        self.mask_token = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, ego_dim)))
        self.decoder = profile_mlp(dim, self.profile_dim)
        self.register_buffer("user_nodes", torch.nonzero(users.has).squeeze(1), persistent=False)
        self.register_buffer("item_nodes", torch.nonzero(items.has).squeeze(1), persistent=False)
        masks = []
        for embedding in (model.user_embedding, model.item_embedding):
            mask = _MaskRows()
            parametrize.register_parametrization(embedding, "weight", mask)
            masks.append(mask)
        self._masks = tuple(masks)  # a tuple: not registered twice as submodules
        self._masked: tuple[torch.Tensor, torch.Tensor] | None = None

    def sample_nodes(self) -> tuple[torch.Tensor, torch.Tensor]:
        n_users = self.user_nodes.numel()
        total = n_users + self.item_nodes.numel()
        count = max(1, int(total * self.ratio))
        chosen = torch.randperm(total, device=self.user_nodes.device)[:count]
        return self.user_nodes[chosen[chosen < n_users]], self.item_nodes[chosen[chosen >= n_users] - n_users]

    @contextmanager
    def masking(self) -> Iterator[None]:
        users, items = self.sample_nodes()
        self._masked = (users, items)
        for mask, rows in zip(self._masks, (users, items)):
            mask.rows, mask.token = rows, self.mask_token
        try:
            yield
        finally:
            for mask in self._masks:
                mask.rows, mask.token = None, None

    def loss(self, ctx: NegativeContext, negatives: Negatives) -> torch.Tensor:
        users, items = self._masked
        self._masked = None
        prop = ctx.propagation
        encoded = self.decoder(torch.cat([prop.user[users], prop.item[items]]))
        target = torch.cat([self.user_profiles[users], self.item_profiles[items]])
        return self.weight * info_nce(encoded, target, self.temperature)


def build_alignment(config: Any, dataset: Any, dim: int, model: nn.Module) -> ProfileAlignment | None:
    """The alignment ``config['alignment']`` names (None when unset)."""
    name = config["alignment"] if "alignment" in config else None  # noqa: SIM401 (RecBole Config: no get)
    if not name:
        return None
    if name not in ALIGNMENTS:
        raise ValueError(f"config key 'alignment' must be one of {ALIGNMENTS} or ~, got {name!r}")
    if dataset is None:
        raise ValueError("alignment needs the dataset: call init_semantic(config, dataset)")
    folder = profile_folder(config)
    policy = setting(config, "profile_missing")
    users = load_profiles(folder, "user", dataset.field2id_token[dataset.uid_field], policy)
    items = load_profiles(folder, "item", dataset.field2id_token[dataset.iid_field], policy)
    if name == "rlmrec-con":
        return ContrastiveAlignment(config, users, items, dim)
    return GenerativeAlignment(config, users, items, dim, model)
