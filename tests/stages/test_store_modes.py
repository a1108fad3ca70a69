"""Store modes: the folder name each mode gives a store, and the mode read back from a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from recbole_hnlm.stages.store_modes import store_mode, store_mode_of, with_mode


def test_each_mode_names_its_own_folder_and_the_name_gives_the_mode_back():
    assert with_mode("hnlm", "pair") == "hnlm" and with_mode("hnlm", "factored") == "hnlm-factored"
    assert with_mode("hnlm-from-toys", "factored") == "hnlm-from-toys-factored"
    for name in ("hnlm", "hnlm-from-toys"):
        for mode in ("pair", "factored"):
            assert store_mode_of(Path("artifacts/ml-100k/negatives") / with_mode(name, mode)) == mode
    assert store_mode_of("artifacts/ml-100k/negatives/hnlm-factored/") == "factored"  # a trailing slash


def test_the_default_mode_is_factored_and_a_bad_one_names_the_key():
    assert store_mode({}) == "factored" and store_mode({"hnlm_store_mode": " Pair "}) == "pair"
    with pytest.raises(ValueError, match=r"'hnlm_store_mode'.*pair, factored.*'both'"):
        store_mode({"hnlm_store_mode": "both"})
