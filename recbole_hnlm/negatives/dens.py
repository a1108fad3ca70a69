"""DENS (Lai et al., WSDM 2023): gates split the positive and the candidates into relevant and irrelevant
factors; per layer, the candidate most similar to the user on the irrelevant factor is chosen, and a
4-term BPR loss on the factors (weight γ) trains the gates.

The selection computes every gate value the factor loss needs (without gradient, on the same rows), so the
loss does not run the gates forward again: :class:`GatedProduct` returns ``x ⊙ gate`` from the selection's
gate and supplies the gate's backward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recbole_hnlm.config_values import config_value, setting
from recbole_hnlm.negatives.base import NegativeContext, Negatives, NegativeSampler
from recbole_hnlm.negatives.hard import pick, rows


class DENSGates(nn.Module):
    """DENS's four ``Linear(d, d)`` gates for layers of width ``d``: the positive's relevant factor is
    ``p ⊙ σ(item_gate(p) + user_gate(u))``, a negative's ``n ⊙ σ(neg_gate(n) + pos_gate(relevant(p)))``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.user_gate = nn.Linear(width, width)
        self.item_gate = nn.Linear(width, width)
        self.pos_gate = nn.Linear(width, width)
        self.neg_gate = nn.Linear(width, width)


class GatedProduct(torch.autograd.Function):
    """``x ⊙ gate`` for ``gate = σ(x·Wxᵀ + bx + y·Wyᵀ + by)`` already computed without gradient.

    Forward reuses ``gate``; backward is that of the whole expression, to ``x``, ``y``, both weights and
    both biases. On one CPU thread this spares two ``[B·layers, d] x [d, d]`` products, an add and a
    sigmoid per gate and batch.
    """

    @staticmethod
    def forward(ctx: Any, x, y, weight_x, weight_y, bias_x, bias_y, gate):  # type: ignore[override]
        ctx.save_for_backward(x, y, weight_x, weight_y, gate)
        return x * gate

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        x, y, weight_x, weight_y, gate = ctx.saved_tensors
        width = x.shape[-1]
        # d(out)/dz = grad ⊙ x ⊙ σ'(z), with σ' read from the saved gate
        dz = torch.ops.aten.sigmoid_backward(grad * x, gate).reshape(-1, width)
        need = ctx.needs_input_grad
        grad_x = grad_y = grad_wx = grad_wy = grad_b = None
        if need[0]:
            grad_x = torch.addmm((grad * gate).reshape(-1, width), dz, weight_x).view_as(x)
        if need[1]:
            grad_y = (dz @ weight_y).view_as(y)
        if need[2]:
            grad_wx = dz.t() @ x.reshape(-1, width)
        if need[3]:
            grad_wy = dz.t() @ y.reshape(-1, width)
        if need[4] or need[5]:
            grad_b = dz.sum(dim=0)
        return grad_x, grad_y, grad_wx, grad_wy, grad_b, grad_b, None


class DENSNegatives(NegativeSampler):
    """DENS: gated relevant/irrelevant factors choose the negative per layer and get their own loss.

    The gates (:class:`DENSGates`) act on each layer's embeddings and are shared by the layers of one width
    (``embedding_size``, plus NGCF's ``hidden_size_list``); they are parameters of the sampler and hence of
    the model. ``w = 1 − min(1, epoch / warmup)`` weighs the whole candidate in the selection score
    ``s_l·(w·e_m − relevant(e_m))``. For the selection the candidate gate's linear part is applied to every
    item's layer embedding once per batch and gathered, which is cheaper than applying it to all ``B·M``
    candidate rows when ``n_items < B·M``. What remains is inherent to the method: the gated selection is
    elementwise over ``B·M·d`` per layer, and the gates' backward runs on ``B·(L+1)`` rows
    (``benchmarks/results/sampler_speed.md``).
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
        items = prop.layers("item")
        groups = self._by_width(items)
        # Selection first, on detached rows; then one gather with gradient per layer for the user, the
        # positive and the chosen negative (Propagation.layer_rows: one zero-filled gradient per layer).
        chosen, gates_seen = self._select(ctx, groups)
        user_l, pos_l, neg_l = zip(
            *(prop.layer_rows(k, ctx.users, ctx.pos_items, chosen[k]) for k in range(len(items)))
        )
        negatives = Negatives(
            emb=prop.pool_layers(list(neg_l)),
            ids=chosen[0] if len(items) == 1 else None,
            ego=rows(prop.ego_items(), chosen[0]),
        )
        if self.gamma > 0:
            pos_rel, neg_rel = self._relevant_factors(groups, gates_seen, user_l, pos_l, neg_l)
            negatives.extra_loss = self.gamma * factor_loss(
                ctx.user_e, prop.pool_layers(pos_rel), prop.pool_layers(neg_rel),
                prop.pool_layers(list(pos_l)), negatives.emb,
            )  # fmt: skip
        return negatives

    @torch.no_grad()
    def _select(
        self, ctx: NegativeContext, groups: dict[int, list[int]]
    ) -> tuple[list[torch.Tensor], dict[int, tuple[torch.Tensor, torch.Tensor]]]:
        """Per layer, the chosen negative's ids ``[B]``; per width, the positive's gate ``[B, g, d]`` and the
        pre-activation of the chosen negatives' gate ``[B, g, d]`` (what the factor loss reuses)."""
        prop = ctx.propagation
        cands = ctx.candidates()
        items, users = prop.layers("item"), prop.layers("user")
        weight = 1.0 - min(1.0, ctx.epoch / self.warmup)
        chosen: list[torch.Tensor] = [cands[:, 0]] * len(items)
        seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        flat = cands.reshape(-1)
        for width, idx in groups.items():
            gates = self.gates[str(width)]
            user_sel = torch.stack([rows(users[k].detach(), ctx.users) for k in idx], dim=1)
            pos_sel = torch.stack([rows(items[k].detach(), ctx.pos_items) for k in idx], dim=1)
            pos_gate = torch.sigmoid(gates.item_gate(pos_sel) + gates.user_gate(user_sel))
            # x = neg_gate(e_m) + pos_pre; weight - sigmoid(x) = sigmoid(-x) - (1 - weight), and -x is built
            # from negated small operands, then updated in place on the [B, M, d] buffer
            pos_pre = gates.pos_gate(pos_sel * pos_gate) + gates.neg_gate.bias  # [B, g, d]
            pos_pre_by_layer = pos_pre.transpose(0, 1).contiguous()  # contiguous rows: a faster broadcast
            neg_linear = []
            for j, k in enumerate(idx):
                table = items[k].detach()
                minus_linear = F.linear(table, -gates.neg_gate.weight)
                buffer = self.scratch("x", flat.numel(), table)
                minus_x = torch.index_select(minus_linear, 0, flat, out=buffer)
                selection = minus_x.view(*cands.shape, -1).sub_(pos_pre_by_layer[j].unsqueeze(1)).sigmoid_()
                if weight != 1.0:
                    selection.sub_(1.0 - weight)
                # s·(sel ⊙ e_m) as a row sum of sel ⊙ e_m ⊙ s: on the CPU a [B, M, d] x [B, d, 1] bmm
                # costs several elementwise passes over the same tensor
                gathered = torch.index_select(table, 0, flat, out=self.scratch("e", flat.numel(), table))
                user_k = user_sel[:, j].contiguous().unsqueeze(1)
                weighted = gathered.view(*cands.shape, -1).mul_(user_k)
                chosen[k] = pick(cands, selection.mul_(weighted).sum(dim=-1).argmax(dim=1))
                neg_linear.append(rows(minus_linear, chosen[k]).neg_())
            seen[width] = (pos_gate, torch.stack(neg_linear, dim=1).add_(pos_pre))
        return chosen, seen

    def _relevant_factors(
        self,
        groups: dict[int, list[int]],
        gates_seen: dict[int, tuple[torch.Tensor, torch.Tensor]],
        user_l: tuple[torch.Tensor, ...],
        pos_l: tuple[torch.Tensor, ...],
        neg_l: tuple[torch.Tensor, ...],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per layer, the relevant factors of the positive and of the chosen negative, with gradient to the
        rows and the gates, from the gate values the selection computed."""
        pos_rel: list[torch.Tensor] = list(pos_l)
        neg_rel: list[torch.Tensor] = list(neg_l)
        for width, idx in groups.items():
            gates = self.gates[str(width)]
            pos_gate, neg_pre = gates_seen[width]
            gated_pos = GatedProduct.apply(
                torch.stack([pos_l[k] for k in idx], dim=1), torch.stack([user_l[k] for k in idx], dim=1),
                gates.item_gate.weight, gates.user_gate.weight, gates.item_gate.bias, gates.user_gate.bias,
                pos_gate,
            )  # fmt: skip
            gated_neg = GatedProduct.apply(
                torch.stack([neg_l[k] for k in idx], dim=1), gated_pos,
                gates.neg_gate.weight, gates.pos_gate.weight, gates.neg_gate.bias, gates.pos_gate.bias,
                torch.sigmoid(neg_pre),
            )  # fmt: skip
            for j, k in enumerate(idx):
                pos_rel[k], neg_rel[k] = gated_pos[:, j], gated_neg[:, j]
        return pos_rel, neg_rel


def factor_loss(
    user: torch.Tensor,
    pos_relevant: torch.Tensor,
    neg_relevant: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
) -> torch.Tensor:
    """Mean of DENS's 4 BPR terms on pooled factors (the irrelevant factor is the rest of the embedding):
    pos relevant > pos irrelevant, neg irrelevant > neg relevant, pos relevant > neg relevant,
    neg irrelevant > pos irrelevant (scores with the pooled user)."""
    s_pos_rel, s_neg_rel = (user * pos_relevant).sum(-1), (user * neg_relevant).sum(-1)
    s_pos_irr = (user * pos).sum(-1) - s_pos_rel
    s_neg_irr = (user * neg).sum(-1) - s_neg_rel
    terms = (
        F.softplus(s_pos_irr - s_pos_rel),
        F.softplus(s_neg_rel - s_neg_irr),
        F.softplus(s_neg_rel - s_pos_rel),
        F.softplus(s_pos_irr - s_neg_irr),
    )
    return sum(t.mean() for t in terms) / 4
