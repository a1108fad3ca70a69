"""Negative samplers that run inside the model's loss, on the embeddings the batch already propagated.

A sampler receives a :class:`NegativeContext` (the batch, its user/positive embeddings, and the whole
propagation of the backbone) and returns :class:`Negatives`: one negative embedding per row (or N per
row, ``[B, N, d]``, for DNS(M,N)), with gradient. Hard samplers (:mod:`recbole_hnlm.negatives.hard`) score
a ``[B, M]`` candidate tensor that the plugin's train loader drew (no positive of the user among them)
under ``no_grad`` and gather the chosen rows with gradient, so they add no second graph propagation per
batch (RecBole's own ``dynamic`` DNS does).

Samplers are ``nn.Module``s so that samplers with parameters (DENS's gates) train and checkpoint with the
model. Register a new one in :data:`SAMPLERS`.
"""

from __future__ import annotations

from typing import Any

from recbole_hnlm.negatives.base import NegativeContext, Negatives, NegativeSampler, Propagation
from recbole_hnlm.negatives.hard import HARD_SAMPLERS
from recbole_hnlm.negatives.semantic_pool import SemanticPoolNegatives
from recbole_hnlm.negatives.text_guard import GuardedDNSMNNegatives

__all__ = [
    "SAMPLERS",
    "NegativeContext",
    "NegativeSampler",
    "Negatives",
    "Propagation",
    "UniformNegatives",
    "build_negative_sampler",
    "candidate_count",
    "sampler_class",
]


class UniformNegatives(NegativeSampler):
    """RNS: the uniformly drawn negative RecBole's sampler attached to the batch (``neg_item_id``)."""

    name = "rns"

    def forward(self, ctx: NegativeContext) -> Negatives:
        ids = ctx.interaction[ctx.neg_item_field]
        return Negatives(emb=ctx.propagation.item[ids], ids=ids)


SAMPLERS: dict[str, type[NegativeSampler]] = {
    cls.name: cls for cls in (UniformNegatives, *HARD_SAMPLERS, SemanticPoolNegatives, GuardedDNSMNNegatives)
}


def sampler_class(name: str) -> type[NegativeSampler]:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"config key 'neg_sampler' is {name!r}; choose one of {', '.join(sorted(SAMPLERS))}"
        ) from None


def candidate_count(config: Any) -> int:
    """M, candidates per positive for the configured sampler (``<name>_candidates`` or ``neg_candidates``)."""
    return sampler_class(config["neg_sampler"]).candidate_count(config)


def build_negative_sampler(config: Any, dim: int) -> NegativeSampler:
    return sampler_class(config["neg_sampler"])(config, dim)
