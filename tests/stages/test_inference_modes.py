"""hnlm_store_mode: the mode checked, the encodings it costs, the estimate printed before the stage."""

from __future__ import annotations

import pytest
from test_inference import fake_view

from recbole_hnlm.pipeline import inference_estimate
from recbole_hnlm.stages.inference import training_pairs
from recbole_hnlm.stages.inference_modes import build_store, encodings, store_mode


@pytest.mark.parametrize("bad", ["pairs", "both", 1])
def test_a_bad_mode_names_the_key_and_the_modes(bad, tmp_path):
    with pytest.raises(ValueError, match=r"'hnlm_store_mode'.*pair, factored"):
        store_mode({"hnlm_store_mode": bad})
    with pytest.raises(ValueError, match="'hnlm_store_mode'"):  # before reading the adapter folder
        build_store({"hnlm_store_mode": bad}, tmp_path, tmp_path / "no-adapter")


def test_the_default_mode_is_the_yamls():
    from recbole_hnlm.config_values import default_of

    assert store_mode({}) == default_of("hnlm_store_mode") and store_mode({"hnlm_store_mode": "Factored"})


def test_encodings_and_the_estimate_follow_the_mode():
    view = fake_view()
    users, items = training_pairs(view)
    assert encodings(view, "pair") == (len(users), len(users))
    assert encodings(view, "factored") == (len(set(users)) + len(set(items)), len(users))
    assert len(set(users)) + len(set(items)) < len(users)  # the fixture's pairs outnumber users + items
    assert f"inference: {len(users):,} queries, one per training interaction" in inference_estimate(
        view, "pair"
    )
    factored = inference_estimate(view, "factored")
    assert f"inference: {len(set(users)) + len(set(items)):,} texts (factored" in factored
    assert f"for {len(users):,} training interactions" in factored and "resumes" not in factored
