"""The optional benchmark split files ``NAME.{train,valid,test}.inter``: a seeded 8:1:1 split per user."""

from __future__ import annotations

import numpy as np

SPLIT_NAMES = ("train", "valid", "test")
SPLIT_RATIOS = (0.8, 0.1, 0.1)


def split_labels(users_sorted: np.ndarray, seed: int) -> np.ndarray:
    """0/1/2 (train/valid/test) per row: a seeded shuffle within each user, then RecBole's 8:1:1 sizes."""
    n = users_sorted.shape[0]
    labels = np.zeros(n, dtype=np.int8)
    if n == 0:
        return labels
    rng = np.random.RandomState(seed)
    keys = rng.random_sample(n)
    order = np.lexsort((keys, users_sorted))
    starts = np.flatnonzero(np.r_[True, users_sorted[order][1:] != users_sorted[order][:-1]])
    counts = np.diff(np.r_[starts, n])
    cnt = [np.floor(r * counts).astype(np.int64) for r in SPLIT_RATIOS]
    cnt[0] = counts - cnt[1] - cnt[2]
    for j in (2, 1):  # RecBole's _calcu_split_ids: give a tiny part one row while train keeps > 1
        frac = SPLIT_RATIOS[j] * counts
        bump = (cnt[0] > 1) & (frac > 0) & (frac < 1)
        cnt[j] = cnt[j] + bump
        cnt[0] = cnt[0] - bump
    pos = np.arange(n) - np.repeat(starts, counts)
    tr = np.repeat(cnt[0], counts)
    va = np.repeat(cnt[1], counts)
    lab = np.where(pos < tr, 0, np.where(pos < tr + va, 1, 2)).astype(np.int8)
    labels[order] = lab
    return labels
