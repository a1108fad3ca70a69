"""Prompt building: system prompts from ``prompts/*.txt`` (package data) and RLMRec-style records.

Long inputs are cut deterministically to a token budget: each review/description to its own cap (at
a word boundary, marked with "..."), then whole reviews (in the given order) or whole history entries
(most recent kept) until the message budget is used. Token counts are estimated as
``ceil(len(text) / chars_per_token)`` unless a tokenizer's counter is passed, so the same inputs
always give the same prompt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from recbole_hnlm.config_values import default_of

Messages = list[dict[str, str]]
ITEM_NOUN = default_of("item_noun")  # what the prompts call an item unless the dataset's yaml says
PROMPT_NAMES = ("item_profile", "user_profile", "hard_negative", "hard_negatives_per_user")


@cache
def load_template(name: str) -> str:
    if name not in PROMPT_NAMES:
        raise ValueError(f"unknown prompt {name!r}; known: {PROMPT_NAMES}")
    return resources.files("recbole_hnlm.llm").joinpath("prompts", f"{name}.txt").read_text("utf-8").strip()


def system_prompt(name: str, item_noun: str = ITEM_NOUN, **values: Any) -> str:
    return Template(load_template(name)).safe_substitute(item_noun=item_noun, **values)


@dataclass(frozen=True)
class PromptBudget:
    """Token caps for one user message; ``count_tokens`` overrides the chars-per-token estimate."""

    max_tokens: int = 1500
    max_review_tokens: int = 120
    max_description_tokens: int = 80
    max_reviews: int = 10
    max_history: int = 50
    chars_per_token: float = 4.0
    count_tokens: Callable[[str], int] | None = field(default=None, compare=False)

    def tokens(self, text: str) -> int:
        if self.count_tokens is not None:
            return self.count_tokens(text)
        return math.ceil(len(text) / self.chars_per_token)

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to ``max_tokens`` at a word boundary, with "..." appended when cut."""
        text = " ".join(str(text).split())
        if self.tokens(text) <= max_tokens:
            return text
        words = text.split(" ")
        lo, hi = 0, len(words)  # binary search for the most words that fit together with the marker
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.tokens(" ".join(words[:mid]) + " ...") <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return (" ".join(words[:lo]) + " ...").strip()


@dataclass(frozen=True)
class ItemRecord:
    """An item's text: ``info`` maps field labels (title, genre, ...) to text; reviews in a fixed order."""

    token: str
    info: dict[str, str]
    reviews: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return next((v for v in self.info.values() if v), self.token)


@dataclass(frozen=True)
class HistoryEntry:
    title: str
    description: str | None = None
    review: str | None = None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _fit(parts: Sequence[str], budget: PromptBudget, available: int, limit: int) -> list[str]:
    """The longest prefix of ``parts`` (at most ``limit``) whose JSON lines fit in ``available`` tokens."""
    kept: list[str] = []
    for part in parts[:limit]:
        cost = budget.tokens(part) + 1
        if cost > available:
            break
        kept.append(part)
        available -= cost
    return kept


def item_profile_user_message(item: ItemRecord, budget: PromptBudget) -> str:
    info = {k: budget.truncate(v, budget.max_description_tokens) for k, v in item.info.items() if v}
    head = f"BASIC INFORMATION:\n{_dumps(info)}"
    if not item.reviews:
        return head
    reviews = [_dumps(budget.truncate(r, budget.max_review_tokens)) for r in item.reviews if r and r.strip()]
    available = budget.max_tokens - budget.tokens(head) - 8
    kept = _fit(reviews, budget, available, budget.max_reviews)
    if not kept:
        return head
    return head + "\nUSER FEEDBACK:\n[\n" + ",\n".join(kept) + "\n]"


def item_profile_messages(item: ItemRecord, budget: PromptBudget, item_noun: str = ITEM_NOUN) -> Messages:
    return [
        {"role": "system", "content": system_prompt("item_profile", item_noun)},
        {"role": "user", "content": item_profile_user_message(item, budget)},
    ]


def _history_line(entry: HistoryEntry, budget: PromptBudget) -> str:
    record: dict[str, str] = {"title": budget.truncate(entry.title, budget.max_description_tokens)}
    if entry.description:
        record["description"] = budget.truncate(entry.description, budget.max_description_tokens)
    if entry.review:
        record["review"] = budget.truncate(entry.review, budget.max_review_tokens)
    return _dumps(record)


def user_profile_user_message(
    history: Sequence[HistoryEntry], budget: PromptBudget, item_noun: str = ITEM_NOUN
) -> str:
    """History in chronological order; the most recent entries that fit are kept, oldest dropped first."""
    head = f"INTERACTED {item_noun.upper()}S:"
    lines = [_history_line(e, budget) for e in reversed(history)]
    kept = _fit(lines, budget, budget.max_tokens - budget.tokens(head) - 8, budget.max_history)
    return head + "\n[\n" + ",\n".join(reversed(kept)) + "\n]"


def user_profile_messages(
    history: Sequence[HistoryEntry], budget: PromptBudget, item_noun: str = ITEM_NOUN
) -> Messages:
    return [
        {"role": "system", "content": system_prompt("user_profile", item_noun)},
        {"role": "user", "content": user_profile_user_message(history, budget, item_noun)},
    ]


def hard_negative_messages(
    user_profile: str,
    item: ItemRecord,
    item_profile: str | None,
    budget: PromptBudget,
    item_noun: str = ITEM_NOUN,
) -> Messages:
    info = {k: budget.truncate(v, budget.max_description_tokens) for k, v in item.info.items() if v}
    parts = [
        "USER PROFILE:\n" + budget.truncate(user_profile, budget.max_tokens // 2),
        f"INTERACTED {item_noun.upper()}:\nBASIC INFORMATION:\n{_dumps(info)}",
    ]
    if item_profile:
        parts.append("PROFILE:\n" + budget.truncate(item_profile, budget.max_tokens // 4))
    return [
        {"role": "system", "content": system_prompt("hard_negative", item_noun)},
        {"role": "user", "content": "\n".join(parts)},
    ]


def per_user_negative_messages(
    user_profile: str, titles: Sequence[str], k: int, budget: PromptBudget, item_noun: str = ITEM_NOUN
) -> Messages:
    head = "USER PROFILE:\n" + budget.truncate(user_profile, budget.max_tokens // 2)
    lines = [_dumps(budget.truncate(t, budget.max_description_tokens)) for t in reversed(titles)]
    kept = _fit(lines, budget, budget.max_tokens - budget.tokens(head) - 8, budget.max_history)
    listing = f"INTERACTED {item_noun.upper()}S:\n[\n" + ",\n".join(reversed(kept)) + "\n]"
    return [
        {"role": "system", "content": system_prompt("hard_negatives_per_user", item_noun, k=k)},
        {"role": "user", "content": head + "\n" + listing},
    ]
