"""The method catalogue: every ``--sampler`` name, its kind, and the config it sets.

A method is one of three kinds:

* ``hard``: an in-loss negative sampler (config key ``neg_sampler``); the entry names its class, which
  :mod:`recbole_hnlm.negatives.samplers` loads (``rns`` is the uniform baseline);
* ``store``: semantic negatives read from a store (config key ``semantic_negatives``; ``run_hnlm`` builds
  the store when none is given) and mixed with the configured ``neg_sampler``: ``hnlm-mix`` is the paper's
  mix-and-adapter mode, ``prompt`` the LLM-named negatives;
* ``alignment``: RLMRec's profile alignment (config key ``alignment``), with the configured negatives.

``hnlm`` is no method of its own: it names the project's default semantic design, the method it
:attr:`~Method.stands_for` (``aligndns``, chosen on validation by the rule in the README), and takes that
method's kind and config, with the design's own settings (:attr:`~Method.design`: ``aligndns_candidates``
from ``hnlm_candidates``) wherever the run does not give those keys itself.

This module imports nothing (``recbole-hnlm train --help`` lists the names without torch). Adding a
sampler: its class (a :class:`~recbole_hnlm.negatives.base.NegativeSampler` whose ``name`` is the
method's), one :func:`_hard` line below, and its keys in ``properties/overall.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HARD = "hard"
STORE = "store"
ALIGNMENT = "alignment"
KINDS = (HARD, STORE, ALIGNMENT)
# the paper's mix-and-adapter mode: the store method whose store the HNLM pipeline builds
MIX_MODE = "hnlm-mix"


@dataclass(frozen=True)
class Method:
    name: str
    kind: str
    sampler_class: str | None = None  # "module:Class" of a hard method's sampler
    stands_for: str | None = None  # an alias's method (``hnlm``: the default design)
    # an alias's own settings of its method: (key, the yaml key holding its value), applied where the run
    # does not give the key itself (``quick_start.build_run_config``)
    design: tuple[tuple[str, str], ...] = ()
    semantic: bool = False  # negatives chosen with text (a store's, or item text's): never a baseline

    def config(self) -> dict[str, Any]:
        """The config entries that choosing this method sets."""
        if self.stands_for is not None:
            return METHODS[self.stands_for].config()
        if self.kind == HARD:
            return {"neg_sampler": self.name}
        if self.kind == ALIGNMENT:
            return {"alignment": self.name}
        return {}


METHODS: dict[str, Method] = {}


def _add(method: Method) -> None:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    METHODS[method.name] = method


def _hard(name: str, sampler_class: str, semantic: bool = False) -> None:
    _add(Method(name, HARD, sampler_class, semantic=semantic))


_hard("rns", "recbole_hnlm.negatives.hard:UniformNegatives")
_hard("dns", "recbole_hnlm.negatives.hard:DNSNegatives")
_hard("dnsmn", "recbole_hnlm.negatives.hard:DNSMNNegatives")
_hard("mixgcf", "recbole_hnlm.negatives.hard:MixGCFNegatives")
_hard("dens", "recbole_hnlm.negatives.dens:DENSNegatives")
_hard("ahns", "recbole_hnlm.negatives.hard:AHNSNegatives")
_hard("semdns", "recbole_hnlm.negatives.semantic_pool:SemanticPoolNegatives", semantic=True)
_hard("guarddns", "recbole_hnlm.negatives.text_guard:GuardedDNSMNNegatives", semantic=True)
_hard("aligndns", "recbole_hnlm.negatives.text_alignment:TextAlignedDNSNegatives", semantic=True)
_add(Method(MIX_MODE, STORE, semantic=True))
_add(Method("prompt", STORE, semantic=True))
_add(Method("rlmrec-con", ALIGNMENT))
_add(Method("rlmrec-gen", ALIGNMENT))

# the default semantic design: the README's rule (the best validation NDCG@20 among the designs measured on
# every converged grid) chose item-anchored alignment at its own pool size (hnlm_candidates in
# properties/overall.yaml); moving the default is this line and that key
DEFAULT_DESIGN = "aligndns"
DEFAULT_DESIGN_SETTINGS = (("aligndns_candidates", "hnlm_candidates"),)
_add(
    Method(
        "hnlm",
        METHODS[DEFAULT_DESIGN].kind,
        stands_for=DEFAULT_DESIGN,
        design=DEFAULT_DESIGN_SETTINGS,
        semantic=True,
    )
)


def names(kind: str | None = None, aliases: bool = True) -> tuple[str, ...]:
    """Every method's name (or those of one kind), in catalogue order; ``aliases=False`` leaves out the
    names that stand for another method (``hnlm``)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown method kind {kind!r}; choose one of {', '.join(KINDS)}")
    return tuple(
        n
        for n, m in METHODS.items()
        if (kind is None or m.kind == kind) and (aliases or m.stands_for is None)
    )


def method(name: str) -> Method:
    """The catalogue entry of ``--sampler name``; an unknown name is an error listing them all."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"--sampler must be one of {', '.join(METHODS)}, got {name!r}") from None


def kind_of(name: str) -> str:
    return method(name).kind
