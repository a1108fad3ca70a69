"""The plugin's RecBole train loader: RecBole's batches plus semantic negatives and hard-sampling candidates.

Installed through RecBole's own ``get_dataloader`` lookup (see :mod:`recbole_hnlm.registry`). Each batch
keeps RecBole's fields (``user_id``, ``item_id``, ``neg_item_id`` from RecBole's uniform sampler) and adds

* ``semantic_neg_emb`` / ``semantic_neg_mask``: the store rows of the batch's (user, positive) pairs. Rows
  are resolved once per training interaction when the loader is built; a batch is one gather.
* ``neg_candidates``: a ``[B, M]`` tensor of non-interacted items, when the configured sampler needs it.
"""

from __future__ import annotations

from logging import getLogger
from typing import Any

import numpy as np
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction

from recbole_hnlm.negatives import (
    CANDIDATES_FIELD,
    SEMANTIC_FIELD,
    SEMANTIC_MASK_FIELD,
    SEMANTIC_POOL_FIELD,
    SEMANTIC_POOL_MASK_FIELD,
)
from recbole_hnlm.negatives.candidates import CandidateSampler
from recbole_hnlm.negatives.samplers import candidate_count, sampler_class
from recbole_hnlm.negatives.semantic_pool import SemanticPool
from recbole_hnlm.negatives.store import BoundNegativeStore, SemanticNegativeStore, StoreError
from recbole_hnlm.negatives.text_guard import TextGuard

MISSING_POLICIES = ("error", "random")


class MissingNegativesError(StoreError):
    """Training pairs without a stored negative under ``semantic_missing: error``."""


class HNLMTrainDataLoader(TrainDataLoader):
    def __init__(self, config: Any, dataset: Any, sampler: Any, shuffle: bool = False) -> None:
        users = dataset.inter_feat[dataset.uid_field].numpy()
        items = dataset.inter_feat[dataset.iid_field].numpy()
        self.semantic_store: BoundNegativeStore | None = None
        self.semantic_rows: np.ndarray | None = None
        self.missing_pairs = 0
        if config["semantic_negatives"]:
            self._bind_store(config, dataset, users, items)
        self.candidate_sampler: CandidateSampler | None = None
        self.semantic_pool: SemanticPool | None = None
        self.text_guard: TextGuard | None = None
        negative_sampler = sampler_class(config["neg_sampler"])
        if negative_sampler.needs_candidates:
            self.candidate_sampler = CandidateSampler(users, items, dataset.item_num, candidate_count(config))
        if negative_sampler.needs_semantic_pool:
            pool = SemanticPool.from_config(config, dataset, users, items, self.candidate_sampler)
            self.semantic_pool = pool
        if negative_sampler.needs_text_guard:
            self.text_guard = TextGuard.from_config(config, dataset, users, items)
        super().__init__(config, dataset, sampler, shuffle=shuffle)

    def exclude_from_candidates(self, *datasets: Any) -> int:
        """Diagnostic oracle: the interactions of ``datasets`` (the valid and test splits) are never drawn as
        candidates, so no hard sampler can pick a held-out positive. Returns how many pairs were excluded."""
        if self.candidate_sampler is None:
            raise ValueError(
                "diagnostic_oracle_candidates needs a sampler that draws candidates (dns, dnsmn, ...)"
            )
        excluded = 0
        for ds in datasets:
            users, items = ds.inter_feat[ds.uid_field].numpy(), ds.inter_feat[ds.iid_field].numpy()
            self.candidate_sampler.exclude(users, items)
            excluded += len(users)
        return excluded

    def _bind_store(self, config: Any, dataset: Any, users: np.ndarray, items: np.ndarray) -> None:
        policy = config["semantic_missing"]
        if policy not in MISSING_POLICIES:
            raise ValueError(
                f"config key 'semantic_missing' must be one of {MISSING_POLICIES}, got {policy!r}"
            )
        store = SemanticNegativeStore(config["semantic_negatives"]).bind(dataset)
        rows = store.rows(users, items)
        missing = np.flatnonzero(rows < 0)
        self.missing_pairs = int(missing.size)
        if missing.size:
            uid, iid = dataset.uid_field, dataset.iid_field
            examples = ", ".join(
                f"({dataset.id2token(uid, users[k])!r}, {dataset.id2token(iid, items[k])!r})"
                for k in missing[:5]
            )
            message = (
                f"{missing.size} of {len(rows)} training pairs ({missing.size / len(rows):.2%}) "
                "have no negative "
                f"in store {store.store.path}, e.g. {examples}"
            )
            if policy == "error":
                raise MissingNegativesError(
                    message + ". Rebuild the store for this split, or set semantic_missing: random to train "
                    "those pairs with the random negative only."
                )
            getLogger().warning(
                message + "; those pairs use the random negative only (semantic_missing: random)"
            )
        self.semantic_store = store
        self.semantic_rows = rows

    def collate_fn(self, index: list[int]) -> Interaction:
        index = np.asarray(index)
        batch = super().collate_fn(index)
        extra: dict[str, torch.Tensor] = {}
        if self.semantic_store is not None:
            # RecBole repeats each row `times` times (one per negative); keep the semantic rows aligned.
            rows = np.tile(self.semantic_rows[index], self.times)
            extra[SEMANTIC_FIELD] = self.semantic_store.gather(rows)
            extra[SEMANTIC_MASK_FIELD] = torch.from_numpy(rows >= 0)
        users = batch[self.uid_field].numpy()
        if self.candidate_sampler is not None:
            candidates = self.candidate_sampler.sample(users)
            if self.text_guard is not None:
                candidates = self.text_guard.filter(users, candidates)
            extra[CANDIDATES_FIELD] = candidates
        if self.semantic_pool is not None:
            pool, semantic = self.semantic_pool.draw(np.tile(index, self.times), users)
            extra[SEMANTIC_POOL_FIELD], extra[SEMANTIC_POOL_MASK_FIELD] = pool, semantic
        if extra:
            batch.update(Interaction(extra))
        return batch
