"""Hard-negative samplers: DNS, DNS(M,N), AHNS and MixGCF, vectorised over the batch (DENS: ``dens.py``).

Every sampler reads the batch's ``[B, M]`` candidate tensor (uniform non-interacted items drawn by the
plugin's train loader), scores it **under ``no_grad``** on the embeddings the batch already propagated, and
gathers only the chosen rows **with gradient**. No sampler runs a second graph propagation.

* DNS (Zhang et al., SIGIR 2013): the top-scored candidate.
* DNS(M,N) (Shi et al., WWW 2023): the top-N scored candidates; the loss averages over the N.
* AHNS (Lai et al., AAAI 2024): the candidate whose score is closest to ``β·(s_pos + α)^(p+1)``.
* MixGCF (Huang et al., KDD 2021): per layer, the candidate with the highest score after positive mixing
  (``α·e⁺ + (1−α)·e⁻``, α ~ U(0,1) per row and layer), pooled into one synthetic negative. A backbone
  without layers (MF) has one layer, so only positive mixing remains.
"""

from __future__ import annotations

from typing import Any

import torch

from recbole_hnlm.config_values import setting
from recbole_hnlm.negatives.base import NegativeContext, Negatives, NegativeSampler


def rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for an integer ``index`` of any shape, through ``index_select`` (with gradient).

    On the CPU this is several times faster than advanced indexing for ``[B, M]`` candidate tensors.
    """
    return torch.index_select(table, 0, index.reshape(-1)).view(*index.shape, table.shape[-1])


def candidate_scores(query: torch.Tensor, table: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``[B, M]`` inner products of each row's ``query`` [B, d] with ``table[candidates]`` (no gradient)."""
    with torch.no_grad():
        return torch.bmm(rows(table.detach(), candidates), query.detach().unsqueeze(-1)).squeeze(-1)


def pick(candidates: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Items of ``candidates`` [B, M] at column ``index`` ([B] or [B, K])."""
    if index.dim() == 1:
        return candidates.gather(1, index.unsqueeze(1)).squeeze(1)
    return candidates.gather(1, index)


class EpochShare:
    """Counts, per training epoch, how many of a sampler's picks had some property (came from text, were
    changed by it), for the sampler's report: the share overall and per epoch."""

    def __init__(self) -> None:
        self.counts: dict[int, list[int]] = {}  # epoch -> [picks with the property, all picks]

    def add(self, epoch: int, hits: int, total: int) -> None:
        counts = self.counts.setdefault(epoch, [0, 0])
        counts[0] += hits
        counts[1] += total

    def overall(self) -> float | None:
        total = sum(c[1] for c in self.counts.values())
        return sum(c[0] for c in self.counts.values()) / total if total else None

    def by_epoch(self) -> dict[int, float]:
        return {e: round(c[0] / c[1], 4) for e, c in sorted(self.counts.items()) if c[1]}


class UniformNegatives(NegativeSampler):
    """RNS: the uniformly drawn negative RecBole's sampler attached to the batch (``neg_item_id``)."""

    name = "rns"

    def forward(self, ctx: NegativeContext) -> Negatives:
        ids = ctx.interaction[ctx.neg_item_field]
        (emb,) = ctx.propagation.final_rows(None, ids)
        return Negatives(emb=emb, ids=ids)


class DNSNegatives(NegativeSampler):
    """DNS: the candidate the current model scores highest."""

    name = "dns"
    needs_candidates = True

    def forward(self, ctx: NegativeContext) -> Negatives:
        cands = ctx.candidates()
        item = ctx.propagation.item
        ids = pick(cands, candidate_scores(ctx.user_e, item, cands).argmax(dim=1))
        return Negatives(emb=rows(item, ids), ids=ids)


class DNSMNNegatives(NegativeSampler):
    """DNS(M,N): the N top-scored of the M candidates; the ranking loss is averaged over them."""

    name = "dnsmn"
    needs_candidates = True

    def __init__(self, config: Any, dim: int) -> None:
        super().__init__(config, dim)
        self.top_n = int(setting(config, "dnsmn_n"))
        if self.top_n < 1:
            raise ValueError(f"config key 'dnsmn_n' must be >= 1, got {self.top_n}")

    def top_columns(
        self, ctx: NegativeContext, cands: torch.Tensor, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, N]`` columns of ``cands`` [B, M] of the N candidates the current model scores highest:
        by inner product with the user's embedding, or with ``query`` [B, d] when a sampler steers it."""
        return self.top_columns_of(ctx, cands, [ctx.user_e if query is None else query])[0]

    def top_columns_of(
        self, ctx: NegativeContext, cands: torch.Tensor, queries: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """:meth:`top_columns` for each of ``queries`` ([B, d] each), from one gather of the candidates."""
        if self.top_n > cands.shape[1]:
            raise ValueError(
                f"DNS(M,N) needs N <= M: dnsmn_n is {self.top_n} but there are {cands.shape[1]} candidates "
                f"(raise {self.name}_candidates or neg_candidates)"
            )
        with torch.no_grad():
            stacked = torch.stack([q.detach() for q in queries], dim=2)  # [B, d, Q]
            scores = torch.bmm(rows(ctx.propagation.item.detach(), cands), stacked)  # [B, M, Q]
        return [scores[..., k].topk(self.top_n, dim=1).indices for k in range(len(queries))]

    def forward(self, ctx: NegativeContext) -> Negatives:
        cands = ctx.candidates()
        ids = pick(cands, self.top_columns(ctx, cands))  # [B, N]
        return Negatives(emb=rows(ctx.propagation.item, ids), ids=ids)


def ahns_power(p: Any, key: str) -> int:
    """``p + 1``, the exponent of AHNS's target, for an integer ``p`` (config key ``key``): ``s_pos + α`` can
    be negative, and a negative base has no real non-integer power."""
    if int(p) != p:
        raise ValueError(f"config key {key!r} must be an integer (a negative base needs one), got {p!r}")
    return int(p) + 1


def ahns_target(pos_score: torch.Tensor, alpha: float, beta: float, power: int) -> torch.Tensor:
    """AHNS's target hardness ``β·(s_pos + α)^(p+1)`` (``power`` from :func:`ahns_power`): the one formula
    of the training sampler and of the supervision stage's ``ahns`` mining, each with its own keys."""
    return beta * torch.pow(pos_score + alpha, power)


class AHNSNegatives(NegativeSampler):
    """AHNS: the candidate whose score is closest to the target hardness ``β·(s(u,i⁺)+α)^(p+1)``."""

    name = "ahns"
    needs_candidates = True

    def __init__(self, config: Any, dim: int) -> None:
        super().__init__(config, dim)
        self.alpha = float(setting(config, "ahns_alpha"))
        self.beta = float(setting(config, "ahns_beta"))
        self.power = ahns_power(setting(config, "ahns_p"), "ahns_p")

    def target(self, pos_score: torch.Tensor) -> torch.Tensor:
        return ahns_target(pos_score, self.alpha, self.beta, self.power)

    def forward(self, ctx: NegativeContext) -> Negatives:
        cands = ctx.candidates()
        item = ctx.propagation.item
        scores = candidate_scores(ctx.user_e, item, cands)
        with torch.no_grad():
            pos_score = (ctx.user_e * ctx.pos_e).sum(dim=-1)
            distance = (scores - self.target(pos_score).unsqueeze(1)).abs()
        ids = pick(cands, distance.argmin(dim=1))
        return Negatives(emb=rows(item, ids), ids=ids)


def layer_queries(ctx: NegativeContext) -> list[torch.Tensor]:
    """The user side each layer is scored with: the pooled user for mean pooling (the final score is then
    ranked per layer, as MixGCF/DENS do), each layer's own slice for concatenation."""
    prop = ctx.propagation
    n_layers = len(prop.layers("item"))
    if prop.pool == "concat":
        return [rows(layer, ctx.users) for layer in prop.layers("user")]
    return [ctx.user_e] * n_layers


class MixGCFNegatives(NegativeSampler):
    """MixGCF: positive mixing per layer, hop mixing across layers, one synthetic negative per row.

    With scores ``s·(α·e⁺ + (1−α)·e_m)`` and ``0 ≤ α < 1``, the ``α·s·e⁺`` term is the same for every
    candidate, so the per-layer argmax is taken on ``s·e_m`` (no ``[B, M, L, d]`` mixed tensor is built);
    only the chosen candidate of each layer is mixed, with gradient through both it and the positive.
    """

    name = "mixgcf"
    needs_candidates = True

    def forward(self, ctx: NegativeContext) -> Negatives:
        prop = ctx.propagation
        cands = ctx.candidates()
        items = prop.layers("item")
        queries = layer_queries(ctx)
        batch = cands.shape[0]
        alpha = torch.rand(batch, len(items), 1, device=cands.device, dtype=ctx.pos_e.dtype)
        chosen_ids, mixed = [], []
        for layer, (table, query) in enumerate(zip(items, queries)):
            ids = pick(cands, candidate_scores(query, table, cands).argmax(dim=1))
            a = alpha[:, layer]
            mixed.append(a * rows(table, ctx.pos_items) + (1.0 - a) * rows(table, ids))
            chosen_ids.append(ids)
        ego_table = prop.ego_items()
        a0 = alpha[:, 0]
        ego = a0 * rows(ego_table, ctx.pos_items) + (1.0 - a0) * rows(ego_table, chosen_ids[0])
        return Negatives(emb=prop.pool_layers(mixed), ids=None, ego=ego)
