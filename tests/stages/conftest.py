from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def llama_backend():
    """A real llama.cpp server (xllamacpp) serving the embedded SmolLM2 GGUF on 127.0.0.1."""
    pytest.importorskip("xllamacpp")
    from recbole_hnlm.llm.backends import LlamaCppChat

    backend = LlamaCppChat(max_concurrency=2, n_ctx_per_slot=2048, n_threads=2)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def minilm():
    from recbole_hnlm.llm.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


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


@pytest.fixture
def small_view():
    return ml100k_view()
