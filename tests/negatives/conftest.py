"""Fixtures of the negatives tests: the real toys slice's train loader with item vectors for its items."""

from __future__ import annotations

import os

import numpy as np
import pytest
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_hnlm.config import make_config
from recbole_hnlm.negatives.item_vectors import write_item_vectors
from tests.conftest import FAST


@pytest.fixture(scope="module")
def text_sampler_train(toys_slice, tmp_path_factory):
    """``load(sampler, **config) -> (config, train loader)`` on the toys slice, ``item_vectors`` set to a
    folder of seeded random 8-d vectors for its items (written in reverse token order, so that loading
    must align rows by token)."""
    root = tmp_path_factory.mktemp("text-sampler")

    def load(sampler: str, **overrides):
        cwd = os.getcwd()
        os.chdir(root)
        try:
            config = make_config(
                "HNLMLightGCN",
                toys_slice["dataset"],
                config_dict={**FAST, **toys_slice["config"], "neg_sampler": sampler, **overrides},
            )
            init_seed(config["seed"], config["reproducibility"])
            dataset = create_dataset(config)
            folder = root / "vectors"
            if not folder.exists():
                tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field][1:]]
                vectors = np.random.default_rng(0).normal(size=(len(tokens), 8))
                write_item_vectors(folder, tokens[::-1], vectors[::-1], {"dataset": "toys-slice"})
            config["item_vectors"] = str(folder)
            train, _, _ = data_preparation(config, dataset)
            return config, train
        finally:
            os.chdir(cwd)

    return load
