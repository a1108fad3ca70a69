"""RecBole's own train/valid/test split of a dataset, as the LLM stages and the supervision stage need it.

The split is built exactly as training builds it (same seed, same ``create_dataset`` + ``build``), so the
"training interactions" every stage keys its outputs on are the ones the recommender trains on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from recbole.data import create_dataset
from recbole.utils import init_seed

from recbole_hnlm.config_values import RECBOLE_SEED, config_value
from recbole_hnlm.data.datasets import check_dataset_files


@dataclass
class Split:
    dataset: Any  # the full, filtered RecBole Dataset (vocabularies, item features)
    train: Any
    valid: Any
    test: Any


def split_seed(config: Any) -> int:
    """The seed of the train/valid/test split: ``split_seed`` when set, else ``seed`` (RecBole's behaviour).

    Fixing ``split_seed`` while varying ``seed`` repeats training on one split (what multi-seed
    benchmarks want, and what lets one semantic-negative store serve every seed).
    """
    value = config_value(config, "split_seed")
    return int(config_value(config, "seed", RECBOLE_SEED) if value is None else value)


def split_dataset(config: Any) -> Any:
    """The dataset of ``config``, its files checked, with the random state seeded by ``split_seed``: the
    one start of every split (:func:`load_split` here, ``training.split_data`` for training, reloading a
    checkpoint and the supervision stage's CF model), whose ``build`` then draws the same split."""
    check_dataset_files(config["dataset"], config["data_path"], config)
    init_seed(split_seed(config), config["reproducibility"])
    return create_dataset(config)


def load_split(config: Any) -> Split:
    """The split as datasets (the LLM stages read its interactions); training wants dataloaders of it."""
    dataset = split_dataset(config)
    train, valid, test = dataset.build()
    return Split(dataset, train, valid, test)


def interaction_tokens(ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Original user and item tokens of a split's interactions, in its row order."""
    users = ds.id2token(ds.uid_field, ds.inter_feat[ds.uid_field].numpy())
    items = ds.id2token(ds.iid_field, ds.inter_feat[ds.iid_field].numpy())
    return np.asarray(users).astype(str), np.asarray(items).astype(str)
