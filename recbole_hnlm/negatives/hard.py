"""Hard-negative samplers: DNS, DNS(M,N), AHNS, MixGCF and DENS, vectorised over the batch.

Every sampler reads the batch's ``[B, M]`` candidate tensor (uniform non-interacted items drawn by the
plugin's train loader), scores it **under ``no_grad``** on the embeddings the batch already propagated, and
gathers only the chosen rows **with gradient**. No sampler runs a second graph propagation.

* DNS (Zhang et al., SIGIR 2013): the top-scored candidate.
* DNS(M,N) (Shi et al., WWW 2023): the top-N scored candidates; the loss averages over the N.
* AHNS (Lai et al., AAAI 2024): the candidate whose score is closest to ``β·(s_pos + α)^(p+1)``.
* MixGCF (Huang et al., KDD 2021): per layer, the candidate with the highest score after positive mixing
  (``α·e⁺ + (1−α)·e⁻``, α ~ U(0,1) per row and layer), pooled into one synthetic negative. A backbone
  without layers (MF) has one layer, so only positive mixing remains.
* DENS (Lai et al., WSDM 2023): gates split the positive and the candidates into relevant and irrelevant
  factors; per layer, the candidate most similar to the user on the irrelevant factor is chosen, and a
  4-term BPR loss on the factors (weight γ) trains the gates.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recbole_hnlm.config_values import config_value, setting
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
        if self.top_n > cands.shape[1]:
            raise ValueError(
                f"DNS(M,N) needs N <= M: dnsmn_n is {self.top_n} but there are {cands.shape[1]} candidates "
                f"(raise {self.name}_candidates or neg_candidates)"
            )
        query = ctx.user_e if query is None else query
        return candidate_scores(query, ctx.propagation.item, cands).topk(self.top_n, dim=1).indices

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


class DENSGates(nn.Module):
    """DENS's four ``Linear(d, d)`` gates for layers of width ``d``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.user_gate = nn.Linear(width, width)
        self.item_gate = nn.Linear(width, width)
        self.pos_gate = nn.Linear(width, width)
        self.neg_gate = nn.Linear(width, width)

    def positive(self, user: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """The positive's relevant factor."""
        return pos * torch.sigmoid(self.item_gate(pos) + self.user_gate(user))

    def negative(self, neg: torch.Tensor, gated_pos: torch.Tensor) -> torch.Tensor:
        """A negative's relevant factor, conditioned on the positive's."""
        return neg * torch.sigmoid(self.neg_gate(neg) + self.pos_gate(gated_pos))


class DENSNegatives(NegativeSampler):
    """DENS: gated relevant/irrelevant factors choose the negative per layer and get their own loss.

    The gates (:class:`DENSGates`) act on each layer's embeddings and are shared by the layers of one width
    (``embedding_size``, plus NGCF's ``hidden_size_list``); they are parameters of the sampler and hence of
    the model. ``w = 1 − min(1, epoch / warmup)`` weighs the whole candidate in the selection score
    ``s_l·(w·e_m − relevant(e_m))``. For the selection the candidate gate's linear part is applied to every
    item's layer embedding once per batch and gathered, which is cheaper than applying it to all ``B·M``
    candidate rows when ``n_items < B·M``. What remains is inherent to the method: the four gates run on
    ``B·(L+1)`` rows forward and backward, and the gated selection is elementwise over ``B·M·d`` per layer
    (``benchmarks/results/sampler_speed.md``: ~1.5x a RecBole LightGCN epoch at M = 6, ~1.7x at M = 16, on one
    CPU thread).
    """

    name = "dens"
    needs_candidates = True

    def __init__(self, config: Any, dim: int) -> None:
        super().__init__(config, dim)
        self.gamma = float(setting(config, "dens_gamma"))
        self.warmup = float(setting(config, "dens_warmup"))
        if self.warmup <= 0:
            raise ValueError(f"config key 'dens_warmup' must be > 0, got {self.warmup}")
        widths = {int(config_value(config, "embedding_size", dim))}
        widths |= {int(w) for w in config_value(config, "hidden_size_list", [])}
        self.gates = nn.ModuleDict({str(w): DENSGates(w) for w in sorted(widths)})
        # the selection's two [B·M, d] gathers go into buffers kept across batches: a fresh 16 MB tensor per
        # gather costs more in page faults than the gather itself (~8 vs ~1.3 ms on toys, one CPU thread)
        self._scratch: dict[str, torch.Tensor] = {}

    def scratch(self, name: str, rows_: int, like: torch.Tensor) -> torch.Tensor:
        """A reusable ``[rows_, d]`` buffer shaped, typed and placed like ``like``'s rows (no gradient)."""
        shape = (rows_, like.shape[-1])
        buffer = self._scratch.get(name)
        if (
            buffer is None
            or buffer.shape != shape
            or buffer.dtype != like.dtype
            or buffer.device != like.device
        ):
            buffer = self._scratch[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buffer

    def gates_for(self, layer: torch.Tensor) -> DENSGates:
        try:
            return self.gates[str(layer.shape[-1])]
        except KeyError:
            raise ValueError(
                f"DENS has gates for layer widths {sorted(int(w) for w in self.gates)} "
                f"(embedding_size, hidden_size_list) but a layer is {layer.shape[-1]}-d"
            ) from None

    def _by_width(self, layers: list[torch.Tensor]) -> dict[int, list[int]]:
        """Layer indices grouped by width: the layers of one group share gates and go through them at once."""
        groups: dict[int, list[int]] = {}
        for k, layer in enumerate(layers):
            self.gates_for(layer)  # a clear error for a width without gates
            groups.setdefault(layer.shape[-1], []).append(k)
        return groups

    def forward(self, ctx: NegativeContext) -> Negatives:
        prop = ctx.propagation
        cands = ctx.candidates()
        items, users = prop.layers("item"), prop.layers("user")
        groups = self._by_width(items)
        weight = 1.0 - min(1.0, ctx.epoch / self.warmup)
        # Selection first, on detached rows; then one gather with gradient per layer for the user, the
        # positive and the chosen negative (Propagation.layer_rows: one zero-filled gradient per layer).
        chosen: list[torch.Tensor | None] = [None] * len(items)
        with torch.no_grad():
            user_sel = [rows(layer.detach(), ctx.users) for layer in users]
            pos_sel = [rows(layer.detach(), ctx.pos_items) for layer in items]
            flat = cands.reshape(-1)
            for width, idx in groups.items():
                gates = self.gates[str(width)]
                gated = gates.positive(
                    torch.stack([user_sel[k] for k in idx], dim=1),
                    torch.stack([pos_sel[k] for k in idx], dim=1),
                )
                # weight - sigmoid(x) = sigmoid(-x) - (1 - weight), x = neg_gate(e_m) + pos_gate(gated pos);
                # -x is built from negated small operands, then updated in place on the [B, M, d] buffer.
                pos_pre = gates.pos_gate(gated) + gates.neg_gate.bias  # [B, g, d]
                for j, k in enumerate(idx):
                    table = items[k].detach()
                    linear = F.linear(table, -gates.neg_gate.weight)
                    minus_x = torch.index_select(linear, 0, flat, out=self.scratch("x", flat.numel(), linear))
                    selection = minus_x.view(*cands.shape, -1).sub_(pos_pre[:, j].unsqueeze(1)).sigmoid_()
                    if weight != 1.0:
                        selection.sub_(1.0 - weight)
                    # s·(sel ⊙ e_m) as a row sum of sel ⊙ e_m ⊙ s: on the CPU a [B, M, d] x [B, d, 1] bmm
                    # costs several elementwise passes over the same tensor
                    gathered = torch.index_select(table, 0, flat, out=self.scratch("e", flat.numel(), table))
                    weighted = gathered.view(*cands.shape, -1).mul_(user_sel[k].unsqueeze(1))
                    scores = selection.mul_(weighted).sum(dim=-1)
                    chosen[k] = pick(cands, scores.argmax(dim=1))
        user_l, pos_l, neg_l = zip(
            *(prop.layer_rows(k, ctx.users, ctx.pos_items, chosen[k]) for k in range(len(items)))
        )
        user_l, pos_l, neg_l = list(user_l), list(pos_l), list(neg_l)
        negatives = Negatives(
            emb=prop.pool_layers(neg_l),
            ids=chosen[0] if len(items) == 1 else None,
            ego=rows(prop.ego_items(), chosen[0]),
        )
        if self.gamma > 0:
            # the positive's relevant factor again, now with gradient: the factor loss trains the gates
            gated_pos = {
                width: self.gates[str(width)].positive(
                    torch.stack([user_l[k] for k in idx], dim=1), torch.stack([pos_l[k] for k in idx], dim=1)
                )
                for width, idx in groups.items()
            }
            negatives.extra_loss = self.gamma * self.factor_loss(ctx, groups, gated_pos, pos_l, neg_l)
        return negatives

    def factor_loss(
        self,
        ctx: NegativeContext,
        groups: dict[int, list[int]],
        gated_pos: dict[int, torch.Tensor],
        pos_l: list[torch.Tensor],
        neg_l: list[torch.Tensor],
    ) -> torch.Tensor:
        """Mean of 4 BPR terms: pos relevant > pos irrelevant, neg irrelevant > neg relevant,
        pos relevant > neg relevant, neg irrelevant > pos irrelevant (scores with the pooled user)."""
        prop = ctx.propagation
        pos_rel: list[torch.Tensor | None] = [None] * len(pos_l)
        neg_rel: list[torch.Tensor | None] = [None] * len(neg_l)
        for width, idx in groups.items():
            stacked_neg = torch.stack([neg_l[k] for k in idx], dim=1)
            gated_neg = self.gates[str(width)].negative(stacked_neg, gated_pos[width])
            for j, k in enumerate(idx):
                pos_rel[k], neg_rel[k] = gated_pos[width][:, j], gated_neg[:, j]
        pos_rel_e, neg_rel_e = prop.pool_layers(pos_rel), prop.pool_layers(neg_rel)
        pos_irr_e = prop.pool_layers(pos_l) - pos_rel_e
        neg_irr_e = prop.pool_layers(neg_l) - neg_rel_e
        u = ctx.user_e
        s_pos_rel, s_pos_irr = (u * pos_rel_e).sum(-1), (u * pos_irr_e).sum(-1)
        s_neg_rel, s_neg_irr = (u * neg_rel_e).sum(-1), (u * neg_irr_e).sum(-1)
        terms = (
            F.softplus(s_pos_irr - s_pos_rel),
            F.softplus(s_neg_rel - s_neg_irr),
            F.softplus(s_neg_rel - s_pos_rel),
            F.softplus(s_pos_irr - s_neg_irr),
        )
        return sum(t.mean() for t in terms) / 4
