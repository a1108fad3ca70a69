"""The semantic-negative logic shared by every backbone (HNLMRec, arXiv 2504.04726, stage 3).

One mixin, :class:`PluginLossMixin`, carries it (and the plugin's other loss parts: the configured
negative sampler and RLMRec's profile alignment) for MF(BPR), LightGCN, NGCF, SGL and SimGCL:

* a trainable :class:`SemanticAdapter` MLP maps a stored negative embedding ``h`` (an LLM/text embedding)
  into the CF space; it is a submodule, so it is in the optimizer and in checkpoints (the reference code
  forgot both);
* the training negative is ``α·adapter(h) + (1−α)·e_neg`` where ``e_neg`` comes from the configured
  negative sampler (uniform, or a hard sampler such as DNS);
* the ranking loss is the backbone's own BPR or a margin hinge, plus ``λ·L_CL(e_u, e_i, adapter(h))``,
  an InfoNCE term with one negative and temperature τ (cosine similarities).

Rows without a stored negative (``semantic_neg_mask`` False) keep the sampler's negative and are left out
of ``L_CL``. With ``α = 0`` and ``λ = 0`` the loss is exactly the backbone's.

A backbone provides :meth:`propagate`, :meth:`bpr_loss`, :meth:`regularization` and, if it has one, its own
:meth:`auxiliary_losses` (SGL's and SimGCL's contrastive terms).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recbole_hnlm.config_values import setting
from recbole_hnlm.models.rlmrec import build_alignment
from recbole_hnlm.negatives import SEMANTIC_FIELD, SEMANTIC_MASK_FIELD
from recbole_hnlm.negatives.samplers import NegativeContext, Negatives, Propagation, build_negative_sampler
from recbole_hnlm.negatives.store import META_FILE, StoreError

_ACTIVATIONS: dict[str, type[nn.Module] | None] = {
    "none": None,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}
RANK_LOSSES = ("bpr", "hinge")


def _activation(name: str, key: str) -> nn.Module | None:
    try:
        cls = _ACTIVATIONS[str(name).lower()]
    except KeyError:
        raise ValueError(f"config key {key!r} is {name!r}; choose one of {', '.join(_ACTIVATIONS)}") from None
    return None if cls is None else cls()


class SemanticAdapter(nn.Module):
    """MLP ``in_dim -> hidden... -> out_dim`` with a configurable hidden and final activation."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_sizes: list[int],
        activation: str = "relu",
        final_activation: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        sizes = [in_dim, *hidden_sizes]
        for d_in, d_out in pairwise(sizes):
            layers.append(nn.Linear(d_in, d_out))
            layers.append(_activation(activation, "adapter_activation"))
            if dropout:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(sizes[-1], out_dim))
        final = _activation(final_activation, "adapter_final_activation")
        if final is not None:
            layers.append(final)
        self.mlp = nn.Sequential(*layers)
        self.in_dim = in_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.shape[-1] != self.in_dim:
            raise StoreError(
                f"semantic negatives have dimension {h.shape[-1]}, but the adapter expects {self.in_dim}; "
                "the store does not match the one this model was built with"
            )
        return self.mlp(h)


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    """Identity forward; negated gradient backward (the adapter then *maximises* the losses it feeds)."""
    return _ReverseGradient.apply(x)


def match_norm(
    adapted: torch.Tensor, reference: torch.Tensor, unit: torch.Tensor | None = None
) -> torch.Tensor:
    """``adapted`` rescaled row by row to the (constant) norm of ``reference``: only its direction is free.

    ``unit`` is ``F.normalize(adapted)`` when the caller has it already (the loss shares it with L_CL)."""
    unit = F.normalize(adapted, dim=-1) if unit is None else unit
    return unit * reference.detach().norm(dim=-1, keepdim=True)


ADAPTER_TRAINING = ("adversarial", "joint")


def mix_negative(
    adapted: torch.Tensor, sampled: torch.Tensor, alpha: float, mask: torch.Tensor | None
) -> torch.Tensor:
    """``α·adapted + (1−α)·sampled`` on rows where ``mask`` is True; ``sampled`` elsewhere.

    ``mask=None`` means every row (a store that covers the split): no select, forward or backward."""
    mixed = alpha * adapted + (1.0 - alpha) * sampled
    return mixed if mask is None else torch.where(mask.unsqueeze(-1), mixed, sampled)


def hinge_loss(pos_score: torch.Tensor, neg_score: torch.Tensor, margin: float) -> torch.Tensor:
    """``mean(max(0, s_neg − s_pos + margin))``: the reference code's margin ranking loss."""
    return torch.clamp(neg_score - pos_score + margin, min=0.0).mean()


def alignment_loss(
    user_e: torch.Tensor,
    pos_e: torch.Tensor,
    semantic_e: torch.Tensor,
    temperature: float,
    semantic_unit: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mean −log(exp(cos(u,i)/τ) / (exp(cos(u,i)/τ) + exp(cos(u,h)/τ)))`` (InfoNCE, one negative).

    Written as ``softplus((cos(u,h) − cos(u,i))/τ)`` over unit vectors, u normalised once: the same value
    as two ``cosine_similarity`` calls and a ``logsumexp``, with about half their work forward and backward
    (``semantic_unit`` = ``F.normalize(semantic_e)`` when the caller has it)."""
    user_unit = F.normalize(user_e, dim=-1)
    semantic_unit = F.normalize(semantic_e, dim=-1) if semantic_unit is None else semantic_unit
    pos = (user_unit * F.normalize(pos_e, dim=-1)).sum(dim=-1)
    neg = (user_unit * semantic_unit).sum(dim=-1)
    return F.softplus((neg - pos) / temperature).mean()


def store_dimension(path: str | Path) -> int:
    meta = Path(path) / META_FILE
    try:
        return int(json.loads(meta.read_text())["dim"])
    except FileNotFoundError:
        raise StoreError(f"{meta}: semantic_negatives does not point at a store (no {META_FILE})") from None
    except (KeyError, ValueError, json.JSONDecodeError) as err:
        raise StoreError(f"{meta}: cannot read field 'dim' ({err})") from err


class PluginLossMixin:
    """The plugin's training loss on any backbone; put first in the bases of a RecBole model:
    ``class HNLMLightGCN(PluginLossMixin, LightGCN)``.

    It owns everything the plugin adds to the backbone's loss, not only the semantic negatives: the
    configured negative sampler (``neg_sampler``: uniform or a hard sampler, with its extra loss), the
    semantic adapter and its alignment term (``semantic_negatives``), and RLMRec's profile alignment
    (``alignment``). The backbone supplies the hooks below (propagation, its BPR, its regularisation and
    auxiliary terms)."""

    #: dimension of the backbone's final embeddings (what the adapter maps into)
    semantic_dim: int

    def init_semantic(self, config: Any, dataset: Any = None) -> None:
        """Call at the end of ``__init__``, after the backbone created and initialised its parameters.

        ``dataset`` (the training dataset) is needed by a profile alignment (``alignment``, RLMRec) and by
        samplers that read it in ``bind`` (aligndns's item text vectors).
        """
        self.current_epoch = 0
        self.semantic_alpha = float(config["semantic_alpha"])
        self.semantic_cl_weight = float(config["semantic_cl_weight"])
        self.semantic_temperature = float(config["semantic_cl_temperature"])
        self.semantic_margin = float(config["semantic_margin"])
        self.adapter_training = setting(config, "adapter_training")
        if self.adapter_training not in ADAPTER_TRAINING:
            raise ValueError(
                f"config key 'adapter_training' must be one of {ADAPTER_TRAINING}, "
                f"got {self.adapter_training!r}"
            )
        self.rank_loss = config["semantic_loss"]
        if self.rank_loss not in RANK_LOSSES:
            raise ValueError(
                f"config key 'semantic_loss' must be one of {RANK_LOSSES}, got {self.rank_loss!r}"
            )
        # New modules draw their initial weights from a generator forked off the seed, so adding them
        # leaves the global RNG (negative sampling, dropout, SGL's graph views) exactly as the backbone's.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config["seed"] or 0))
            self.negative_sampler = build_negative_sampler(config, self.semantic_dim)
            if dataset is not None:
                self.negative_sampler.bind(dataset)
            self.semantic_adapter: SemanticAdapter | None = None
            if config["semantic_negatives"]:
                self.semantic_adapter = SemanticAdapter(
                    store_dimension(config["semantic_negatives"]),
                    self.semantic_dim,
                    list(config["adapter_hidden_sizes"] or []),
                    config["adapter_activation"],
                    config["adapter_final_activation"],
                    float(config["adapter_dropout"]),
                )
            self.profile_alignment = build_alignment(config, dataset, self.semantic_dim, self)
        self.to(config["device"])

    # --- backbone hooks --------------------------------------------------------------------------
    def propagate(self) -> Propagation:
        raise NotImplementedError

    def bpr_loss(self, pos_score: torch.Tensor, neg_score: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regularization(
        self,
        users: torch.Tensor,
        pos_items: torch.Tensor,
        negatives: Negatives,
        user_e: torch.Tensor,
        pos_e: torch.Tensor,
    ) -> torch.Tensor | None:
        """The backbone's weighted regularisation term, or None."""
        return None

    def auxiliary_losses(
        self, users: torch.Tensor, pos_items: torch.Tensor, prop: Propagation
    ) -> list[torch.Tensor]:
        """The backbone's own extra loss terms. Called after :meth:`propagate` of the same step, so it may
        read what that left (HNLMSGL's augmented views)."""
        return []

    # --- the shared loss ---------------------------------------------------------------------------
    def calculate_loss(self, interaction: Any) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if (
            getattr(self, "restore_user_e", None) is not None
            or getattr(self, "restore_item_e", None) is not None
        ):
            self.restore_user_e, self.restore_item_e = None, None
        users = interaction[self.USER_ID]
        pos_items = interaction[self.ITEM_ID]
        alignment = self.profile_alignment
        with alignment.masking() if alignment is not None else nullcontext():
            prop = self.propagate()
        user_e, pos_e = prop.final_rows(users, pos_items)  # one gather, one zero-filled gradient
        ctx = NegativeContext(
            interaction, users, pos_items, user_e, pos_e, prop, self.NEG_ITEM_ID, self.current_epoch
        )
        negatives = self.negative_sampler(ctx)

        adapted = unit = mask = None
        covered = True
        if self.semantic_adapter is not None and (self.semantic_alpha or self.semantic_cl_weight):
            mask = interaction[SEMANTIC_MASK_FIELD]
            # a store covering every pair (the usual case) needs no row selection at all
            covered = bool(mask.all())
            adapted = self.semantic_adapter(interaction[SEMANTIC_FIELD])
            if self.adapter_training == "adversarial":
                # Minimising the ranking loss through the adapter would teach it to emit *easy* negatives
                # (the loss collapses to ~0 within 3 epochs on ml-100k); reversed, it learns to make the
                # semantic negative harder for the current model, with its norm tied to e_neg's below.
                adapted = reverse_gradient(adapted)
            unit = F.normalize(adapted, dim=-1)  # shared by match_norm and L_CL: one normalisation

        pos_score = torch.mul(user_e, pos_e).sum(dim=1)
        # N negatives per row (DNS(M,N)): the loss is the mean of the N single-negative losses.
        column_losses = []
        for column in negatives.columns():
            neg_e = column.emb
            if adapted is not None and self.semantic_alpha:
                mixed = match_norm(adapted, neg_e, unit)
                neg_e = mix_negative(mixed, neg_e, self.semantic_alpha, None if covered else mask)
            neg_score = torch.mul(user_e, neg_e).sum(dim=1)
            if self.rank_loss == "bpr":
                loss = self.bpr_loss(pos_score, neg_score)
            else:
                loss = hinge_loss(pos_score, neg_score, self.semantic_margin)
            reg = self.regularization(users, pos_items, column, user_e, pos_e)
            if reg is not None:
                loss = loss + reg
            column_losses.append(loss)
        loss = column_losses[0] if len(column_losses) == 1 else torch.stack(column_losses).mean(dim=0)
        losses = [loss]
        if adapted is not None and self.semantic_cl_weight:
            # Always emit the term (0 when no row has a stored negative): RecBole logs loss parts by position.
            if covered:
                cl = alignment_loss(user_e, pos_e, adapted, self.semantic_temperature, unit)
            elif bool(mask.any()):
                cl = alignment_loss(
                    user_e[mask], pos_e[mask], adapted[mask], self.semantic_temperature, unit[mask]
                )
            else:
                cl = adapted.sum() * 0.0
            losses.append(self.semantic_cl_weight * cl)
        if negatives.extra_loss is not None:
            losses.append(negatives.extra_loss)
        losses.extend(self.auxiliary_losses(users, pos_items, prop))
        if alignment is not None:
            losses.append(alignment.loss(ctx, negatives))
        return losses[0] if len(losses) == 1 else tuple(losses)
