"""Negative samplers that run inside the model's loss, on the embeddings the batch already propagated.

A sampler receives a :class:`NegativeContext` (the batch, its user/positive embeddings, and the whole
propagation of the backbone) and returns :class:`Negatives`: one negative embedding per row (or N per
row, ``[B, N, d]``, for DNS(M,N)), with gradient. Hard samplers (:mod:`recbole_hnlm.negatives.hard`) score
a ``[B, M]`` candidate tensor that the plugin's train loader drew (no positive of the user among them)
under ``no_grad`` and gather the chosen rows with gradient, so they add no second graph propagation per
batch (RecBole's own ``dynamic`` DNS does).

Samplers are ``nn.Module``s so that samplers with parameters (DENS's gates) train and checkpoint with the
model. :data:`SAMPLERS` holds the class of every ``hard`` method of the catalogue
(:mod:`recbole_hnlm.methods`): register a new sampler there, with one line.
"""

from __future__ import annotations

import importlib
from typing import Any

from recbole_hnlm import methods
from recbole_hnlm.negatives.base import NegativeContext, Negatives, NegativeSampler, Propagation
from recbole_hnlm.negatives.hard import UniformNegatives

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


def _load(path: str) -> type[NegativeSampler]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _sampler_classes() -> dict[str, type[NegativeSampler]]:
    classes = {}
    for name in methods.names(methods.HARD, aliases=False):
        cls = _load(methods.METHODS[name].sampler_class)
        if cls.name != name:
            raise TypeError(f"method {name!r} names {cls.__qualname__}, whose name is {cls.name!r}")
        classes[name] = cls
    return classes


SAMPLERS: dict[str, type[NegativeSampler]] = _sampler_classes()


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
