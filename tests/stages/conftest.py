from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

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


@pytest.fixture
def small_view():
    from stage_data import ml100k_view

    return ml100k_view()
