"""The arm grammar of `recbole-hnlm bench --samplers`: `label:sampler` rows, their stores and overrides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recbole_hnlm import methods

STORE_SAMPLERS = methods.names(methods.STORE)


@dataclass(frozen=True)
class Arm:
    """One row of the table: a label and the ``--sampler`` it runs."""

    label: str
    sampler: str

    @property
    def is_baseline(self) -> bool:
        """A classic sampler: what the semantic ones are tested against (text samplers are not)."""
        return not methods.method(self.sampler).semantic

    @property
    def needs_store(self) -> bool:
        return self.sampler in STORE_SAMPLERS

    @property
    def source_dataset(self) -> str | None:
        """``SRC`` of a label ``hnlm-mix@SRC`` (an embedder fine-tuned on another dataset)."""
        return self.label.split("@", 1)[1] if "@" in self.label else None


def parse_arms(text: str | Sequence[str]) -> list[Arm]:
    SAMPLERS = methods.names()
    items = text.split(",") if isinstance(text, str) else list(text)
    arms: list[Arm] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        label, _, sampler = item.rpartition(":") if ":" in item else (item, "", item)
        if sampler not in SAMPLERS:
            if "@" in sampler and sampler.split("@", 1)[0] in SAMPLERS:
                label, sampler = sampler, sampler.split("@", 1)[0]
            else:
                raise ValueError(
                    f"--samplers: unknown sampler {sampler!r} in {item!r}; known: {', '.join(SAMPLERS)}"
                )
        if any(a.label == label for a in arms):
            raise ValueError(f"--samplers: label {label!r} appears twice (write label:sampler)")
        arms.append(Arm(label, sampler))
    if not arms:
        raise ValueError("--samplers: no sampler given")
    return arms


def parse_negatives(values: Sequence[str] | None, arms: Sequence[Arm]) -> dict[str, str]:
    """``--negatives PATH`` (the one store-based sampler) or ``--negatives label=PATH`` (repeatable)."""
    stores: dict[str, str] = {}
    store_arms = [a.label for a in arms if a.needs_store]
    for value in values or []:
        label, sep, path = value.partition("=")
        if not sep:
            if len(store_arms) != 1:
                raise ValueError(
                    f"--negatives {value!r}: with {len(store_arms)} store-based samplers write label=PATH"
                )
            label, path = store_arms[0], value
        if label not in {a.label for a in arms}:
            raise ValueError(f"--negatives {value!r}: no sampler labelled {label!r} in --samplers")
        stores[label] = path
    return stores


def parse_arm_config(values: Sequence[str] | None, arms: Sequence[Arm]) -> dict[str, dict[str, str]]:
    """``--arm_config LABEL:KEY=VALUE`` (repeatable): a config override for one arm's cells only."""
    labels = {a.label for a in arms}
    per_arm: dict[str, dict[str, str]] = {}
    for value in values or []:
        label, colon, assignment = value.partition(":")
        key, equals, setting = assignment.partition("=")
        if not (colon and equals and key):
            raise ValueError(f"--arm_config {value!r}: write LABEL:KEY=VALUE")
        if label not in labels:
            raise ValueError(f"--arm_config {value!r}: no sampler labelled {label!r} in --samplers")
        per_arm.setdefault(label, {})[key] = setting
    return per_arm
