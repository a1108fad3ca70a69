"""Small real inputs for stage tests (importable by test subprocesses too)."""

from __future__ import annotations


def ml100k_view(n_users: int = 12, n_items_per_user: int = 6):
    """A small TrainingView over the embedded ml-100k files (first users, their earliest interactions)."""
    from recbole_hnlm.data.text import dataset_dir, load_item_text, read_atomic
    from recbole_hnlm.llm.prompts import ItemRecord
    from recbole_hnlm.stages.common import TrainingView

    folder = dataset_dir("nowhere", "ml-100k")
    texts = load_item_text(folder, "ml-100k", ["movie_title", "release_year", "class"])
    inter = read_atomic(folder / "ml-100k.inter", ["user_id", "item_id", "timestamp"])
    inter = inter.assign(ts=inter["timestamp"].astype(float)).sort_values(["user_id", "ts"], kind="stable")
    users = sorted(inter["user_id"].unique(), key=int)[:n_users]
    histories = {u: inter.loc[inter["user_id"] == u, "item_id"].tolist()[:n_items_per_user] for u in users}
    used = sorted({i for items in histories.values() for i in items}, key=int)
    items = {t: ItemRecord(t, texts[t]) for t in used}
    return TrainingView("ml-100k", "fp-test", items, histories, {})
