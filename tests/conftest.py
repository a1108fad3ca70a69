"""Shared fixtures: real data slices, a store built for them, and a clean working directory for RecBole."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)

import recbole_hnlm  # noqa: E402,F401  (applies the compat shims, registers the models)
from recbole_hnlm import methods  # noqa: E402
from recbole_hnlm.negatives.samplers import SAMPLERS  # noqa: E402

# The catalogue's hard samplers that pick among the loader's M candidates from the CF embeddings alone
# (not rns, nor the text samplers semdns/guarddns, which need item vectors).
CF_HARD_SAMPLERS = [
    name
    for name in methods.names(methods.HARD, aliases=False)
    if SAMPLERS[name].needs_candidates and not SAMPLERS[name].needs_item_vectors
]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Small, fast settings for training tests (1 epoch, no progress bars, quiet logs).
FAST = {
    "epochs": 1,
    "embedding_size": 16,
    "train_batch_size": 1024,
    "show_progress": False,
    "state": "ERROR",
    "seed": 2020,
}


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real dataset {name} not available at {path}")
    return path


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


@pytest.fixture(autouse=False)
def in_tmp(tmp_path, monkeypatch):
    """RecBole writes log/, log_tensorboard/ and saved/ into the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def toys_slice(tmp_path_factory) -> dict:
    """The first 300 users of the real Amazon Toys 5-core data as a RecBole dataset 'toys-slice'.

    Returns ``{"dataset": name, "config": config entries that load it}``.
    """
    source = shared_dataset("toys") / "toys.inter"
    inter = pd.read_csv(source, sep="\t", dtype=str)
    users = inter["user_id:token"].drop_duplicates().iloc[:300]
    part = inter[inter["user_id:token"].isin(users)]
    root = tmp_path_factory.mktemp("data")
    folder = root / "toys-slice"
    folder.mkdir()
    part.to_csv(folder / "toys-slice.inter", sep="\t", index=False)
    return {
        "dataset": "toys-slice",
        "config": {"data_path": str(root), "load_col": {"inter": ["user_id", "item_id", "timestamp"]}},
    }


def build_store_for(
    model: str, dataset: str, config_dict: dict, path: Path, dim: int = 8, seed: int = 0
) -> Path:
    """A store with a random vector for every training pair of ``dataset``'s split (as training builds it)."""
    from recbole_hnlm.config import make_config
    from recbole_hnlm.data.fingerprint import dataset_fingerprint
    from recbole_hnlm.data.splits import interaction_tokens, load_split
    from recbole_hnlm.negatives.store import write_store

    config = make_config(model, dataset, config_dict=config_dict)
    split = load_split(config)
    users, items = interaction_tokens(split.train)
    vectors = np.random.default_rng(seed).normal(size=(len(users), dim)).astype(np.float32)
    write_store(
        path,
        users,
        items,
        vectors,
        producer="test",
        dataset=dataset,
        dataset_fingerprint=dataset_fingerprint(split.dataset),
        config=config_dict,
    )
    return path
