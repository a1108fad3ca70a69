"""Query and passage text: ONE builder for supervision (the fine-tuning triples) and inference (the store).

``query(u, i)`` is the text of i (+ its profile) and u's profile (or its recent titles), with the first
``hnlm_query_cf_dims`` CF dimensions of u and i when they are serialised; ``passage(j)`` is the text of j
(+ its profile). ``item_part(i)`` and ``user_part(u)`` split the query's lines into those of i and those of
u, what the factored store (``hnlm_store_mode: factored``) embeds once per item and once per user.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recbole_hnlm.io import fingerprint
from recbole_hnlm.stages.item_vectors import item_passage
from recbole_hnlm.stages.supervision_settings import SupervisionSettings


def _words(text: str, limit: int) -> str:
    words = " ".join(str(text).split()).split(" ")
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


@dataclass
class QueryBuilder:
    """Texts of items and users; ``query(u, i)`` and ``passage(j)`` are what the embedder sees.

    Users without a usable profile are described by their most recent training titles and items without
    one by their text fields only; both are counted in ``fallbacks`` (and reported), never hidden.
    """

    item_text: dict[str, str]
    user_text: dict[str, str]
    fallbacks: Counter = field(default_factory=Counter)
    profiles_fingerprint: str | None = None
    cf_user: dict[str, np.ndarray] | None = None
    cf_item: dict[str, np.ndarray] | None = None

    def passage(self, item: str) -> str:
        return self.item_text[item]

    def _item_lines(self, item: str) -> list[str]:
        lines = [f"Item: {self.item_text[item]}"]
        if self.cf_user is not None and self.cf_item is not None:
            lines.append(f"Item embedding: [{','.join(f'{x:.2f}' for x in self.cf_item[item])}]")
        return lines

    def _user_lines(self, user: str) -> list[str]:
        lines = [f"User: {self.user_text[user]}"]
        if self.cf_user is not None and self.cf_item is not None:
            lines.append(f"User embedding: [{','.join(f'{x:.2f}' for x in self.cf_user[user])}]")
        return lines

    def query(self, user: str, item: str) -> str:
        # the line order predates the per-user/per-item split; kept so existing stores keep their text
        (item_text, *item_cf), (user_text, *user_cf) = self._item_lines(item), self._user_lines(user)
        return "\n".join([item_text, user_text, *user_cf, *item_cf])

    def item_part(self, item: str) -> str:
        """The lines of ``query(u, item)`` that depend on the item only (embedded once per item)."""
        return "\n".join(self._item_lines(item))

    def user_part(self, user: str) -> str:
        """The lines of ``query(user, i)`` that depend on the user only (embedded once per user)."""
        return "\n".join(self._user_lines(user))

    @classmethod
    def build(cls, view: Any, profiles_dir: Path | None, settings: SupervisionSettings) -> QueryBuilder:
        from recbole_hnlm.stages.profiles import ProfilesMissingError, checked_profiles_meta, usable_summaries

        item_profiles: dict[str, str] = {}
        user_profiles: dict[str, str] = {}
        profiles_fp = None
        if settings.hnlm_use_profiles:
            if profiles_dir is None:
                raise ProfilesMissingError("hnlm_use_profiles is set but no profiles folder was given")
            try:
                meta = checked_profiles_meta(profiles_dir, view)
            except ProfilesMissingError as err:
                raise ProfilesMissingError(f"{err} (or set hnlm_use_profiles: false)") from None
            profiles_fp = fingerprint([meta.get("dataset_fingerprint"), meta.get("config_fingerprint")])
            user_profiles, item_profiles = usable_summaries(profiles_dir)
        fallbacks: Counter = Counter()
        item_text: dict[str, str] = {}
        for token, record in view.items.items():
            info = item_passage(record)
            profile = item_profiles.get(token)
            if profile:
                info += ". " + _words(profile, settings.hnlm_item_profile_words)
            elif settings.hnlm_use_profiles:
                fallbacks["item_without_profile"] += 1
            item_text[token] = info
        user_text: dict[str, str] = {}
        for user, history in view.histories.items():
            profile = user_profiles.get(user)
            if profile:
                user_text[user] = _words(profile, settings.hnlm_query_user_words)
                continue
            if settings.hnlm_use_profiles:
                fallbacks["user_without_profile"] += 1
            titles = [view.items[t].title if t in view.items else t for t in reversed(history[-8:])]
            user_text[user] = _words("recently chose " + "; ".join(titles), settings.hnlm_query_user_words)
        return cls(item_text, user_text, fallbacks, profiles_fp)

    def attach_cf(self, folder: Path, dims: int) -> None:
        """Load the CF embeddings saved with the supervision set (only when ``hnlm_query_cf_dims > 0``)."""
        if dims <= 0:
            return
        data = np.load(folder / "cf_embeddings.npz", allow_pickle=False)
        self.cf_user = dict(zip(data["user_tokens"].tolist(), data["user"][:, :dims]))
        self.cf_item = dict(zip(data["item_tokens"].tolist(), data["item"][:, :dims]))
