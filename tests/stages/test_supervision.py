"""CF supervision: hard-negative selection, query texts, and the mined set on real ml-100k."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recbole_hnlm.llm.prompts import ItemRecord
from recbole_hnlm.stages.common import TrainingView
from recbole_hnlm.stages.profiles import ProfilesMismatchError
from recbole_hnlm.stages.supervision import (
    QueryBuilder,
    SupervisionSettings,
    build_supervision,
    read_triples,
    select_negatives,
)

torch.set_num_threads(1)

# ml-100k restricted to 5-star ratings (~21k interactions): a real dataset that trains in seconds.
SMALL_ML100K = {
    "val_interval": {"rating": "[5,5]"},
    "hnlm_use_profiles": False,
    "hnlm_cf_epochs": 1,
    "hnlm_sup_size": 300,
    "hnlm_sup_candidates": 16,
    "state": "ERROR",
    "show_progress": False,
    "embedding_size": 16,
}


def test_dns_picks_top_scored_and_ahns_picks_adaptive_target():
    cand = torch.tensor([[0.1, 0.9, 0.5], [2.0, -1.0, 0.3]])
    pos = torch.tensor([0.45, 0.2])
    assert select_negatives(pos, cand, SupervisionSettings()).tolist() == [1, 0]
    ahns = SupervisionSettings(hnlm_sup_selection="ahns")  # target = s_pos: the candidate closest to it
    assert select_negatives(pos, cand, ahns).tolist() == [2, 2]
    with pytest.raises(ValueError, match="hnlm_sup_selection"):
        SupervisionSettings.resolve({"hnlm_sup_selection": "random"})


def test_ahns_mining_is_the_training_samplers_formula_with_its_own_keys():
    from recbole_hnlm.negatives.hard import ahns_target

    cand = torch.tensor([[0.1, 0.9, 0.5, 2.0], [2.0, -1.0, 0.3, 0.6]])
    pos = torch.tensor([-0.9, 0.2])
    ahns = SupervisionSettings(
        hnlm_sup_selection="ahns", hnlm_ahns_alpha=1.0, hnlm_ahns_beta=2.0, hnlm_ahns_p=1.0
    )
    target = ahns_target(pos, 1.0, 2.0, 2)  # 2 * (s_pos + 1)^2 = [0.02, 2.88]
    assert (
        select_negatives(pos, cand, ahns).tolist()
        == (cand - target[:, None]).abs().argmin(1).tolist()
        == [0, 0]
    )
    with pytest.raises(ValueError, match="'hnlm_ahns_p' must be an integer"):
        SupervisionSettings.resolve({"hnlm_sup_selection": "ahns", "hnlm_ahns_p": 0.5})


def _view() -> TrainingView:
    items = {t: ItemRecord(t, {"title": f"Film {t}", "genre": "Drama"}) for t in ("1", "2", "3")}
    return TrainingView("toy", "fp", items, {"u1": ["1", "2"], "u2": ["3"]}, {}, None)


def _write_profiles(folder, fingerprint="fp", view=None):
    """Profiles written for ``view``'s training split (default: :func:`_view`'s)."""
    folder.mkdir(parents=True)
    split = (view or _view()).split_fingerprint
    meta = {"dataset_fingerprint": fingerprint, "split_fingerprint": split, "config_fingerprint": "c"}
    (folder / "meta.json").write_text(json.dumps(meta))
    users = [
        {"token": "u1", "summarization": "likes slow dramas", "status": "ok"},
        {"token": "u2", "summarization": None, "status": "failed"},
    ]
    items = [{"token": "1", "summarization": "a quiet drama", "status": "ok"}]
    (folder / "users.jsonl").write_text("".join(json.dumps(r) + "\n" for r in users))
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))


def test_query_builder_uses_profiles_and_counts_fallbacks(tmp_path):
    _write_profiles(tmp_path / "profiles")
    builder = QueryBuilder.build(_view(), tmp_path / "profiles", SupervisionSettings(hnlm_use_profiles=True))
    assert (
        builder.query("u1", "1")
        == "Item: title: Film 1; genre: Drama. a quiet drama\nUser: likes slow dramas"
    )
    assert "recently chose Film 3" in builder.query("u2", "3")  # failed profile: history titles, counted
    assert builder.fallbacks == {"user_without_profile": 1, "item_without_profile": 2}
    assert builder.passage("2") == "title: Film 2; genre: Drama"


def test_profiles_of_another_dataset_are_rejected(tmp_path):
    _write_profiles(tmp_path / "profiles", fingerprint="other")
    with pytest.raises(ValueError, match="fingerprint"):
        QueryBuilder.build(_view(), tmp_path / "profiles", SupervisionSettings(hnlm_use_profiles=True))
    with pytest.raises(FileNotFoundError, match="recbole-hnlm profiles"):
        QueryBuilder.build(_view(), tmp_path / "missing", SupervisionSettings(hnlm_use_profiles=True))


def test_profiles_of_another_split_are_rejected(tmp_path):
    """Same dataset, but the profiles read histories of another split (u2's test item 2 was training
    there): using them would leak held-out interactions into the queries."""
    other = _view()
    other.histories = {"u1": ["1"], "u2": ["3", "2"]}
    assert other.split_fingerprint != _view().split_fingerprint
    _write_profiles(tmp_path / "profiles", view=other)
    with pytest.raises(ProfilesMismatchError, match="split_fingerprint"):
        QueryBuilder.build(_view(), tmp_path / "profiles", SupervisionSettings(hnlm_use_profiles=True))


def test_mined_negatives_on_ml100k(in_tmp):
    from recbole_hnlm.config import make_config
    from recbole_hnlm.data.splits import interaction_tokens, load_split

    config = make_config("HNLMLightGCN", "ml-100k", config_dict=SMALL_ML100K)
    root = in_tmp / "artifacts" / "ml-100k"
    out = build_supervision(config, root, progress=False)
    triples = read_triples(out)
    meta = json.loads((out / "meta.json").read_text())
    assert len(triples) == meta["count"] == 300
    users, items = interaction_tokens(load_split(config).train)
    seen = set(zip(users.tolist(), items.tolist()))
    records = [json.loads(line) for line in (out / "triples.jsonl").read_text().splitlines()]
    assert all((r["user"], r["item"]) in seen for r in records)
    assert not any((r["user"], r["hard_negative"]) in seen for r in records)  # j is never a training item
    assert len({(r["user"], r["item"]) for r in records}) == 300
    # DNS: the chosen negative scores above the average candidate
    assert meta["mining"]["mean_negative_score"] > meta["mining"]["mean_candidate_score"]
    assert records[0]["negative"] in records[0]["query"]  # the query describes the interacted item
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert build_supervision(config, root, progress=False) == out  # cached: same fingerprint
    assert (out / "meta.json").stat().st_mtime_ns == stamp
    assert np.isfinite(meta["mining"]["mean_pos_score"])


def test_supervision_is_seeded_by_the_split_not_the_training_seed():
    """One split, many training seeds: the same supervision (and so one store) serves them all."""
    assert SupervisionSettings.resolve({"seed": 2021, "split_seed": 2020}).seed == 2020
    assert SupervisionSettings.resolve({"seed": 2021, "split_seed": None}).seed == 2021  # split follows seed


class _RunsCode:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_crafted_cf_checkpoint_is_refused_not_run(in_tmp):
    """``hnlm_cf_checkpoint`` names a user's file: it is read with the allow-listing loader only."""
    from recbole_hnlm.compat import CheckpointRefusedError
    from recbole_hnlm.config import make_config
    from recbole_hnlm.stages.supervision import train_cf

    marker = in_tmp / "pwned"
    crafted = in_tmp / "cf.pth"
    torch.save({"config": _RunsCode(marker), "state_dict": {}}, crafted, pickle_protocol=4)
    config = make_config(
        "HNLMLightGCN", "ml-100k", config_dict={**SMALL_ML100K, "hnlm_cf_checkpoint": str(crafted)}
    )
    with pytest.raises(CheckpointRefusedError, match=r"cf\.pth.*system"):
        train_cf(config, SupervisionSettings.resolve(config), in_tmp / "artifacts", progress=False)
    assert not marker.exists()


def test_unset_size_covers_every_user_with_per_user_pairs():
    from recbole_hnlm.stages.supervision import sample_pairs

    n_items = 10
    # user 1 has 3 pairs, user 2 one, user 3 two
    keys = np.array([11, 12, 15, 23, 31, 39], dtype=np.int64)
    one = sample_pairs(keys, n_items, SupervisionSettings(hnlm_sup_size=None, hnlm_sup_per_user=1))
    assert sorted(one // n_items) == [1, 2, 3] and set(one) <= set(keys)
    two = sample_pairs(keys, n_items, SupervisionSettings(hnlm_sup_size=None, hnlm_sup_per_user=2))
    assert sorted(two // n_items) == [1, 1, 2, 3, 3] and len(set(two)) == 5
    assert np.array_equal(two, sample_pairs(keys, n_items, SupervisionSettings(hnlm_sup_per_user=2)))
    uniform = sample_pairs(keys, n_items, SupervisionSettings(hnlm_sup_size=4))
    assert len(uniform) == 4 and set(uniform) <= set(keys)
    with pytest.raises(ValueError, match="hnlm_sup_per_user"):
        sample_pairs(keys, n_items, SupervisionSettings(hnlm_sup_per_user=0))
    assert SupervisionSettings.resolve({"hnlm_sup_size": "300"}).hnlm_sup_size == 300


class _GraphBackbone(torch.nn.Module):
    """A graph model's shape: ``forward()`` with no arguments returns the propagated tables."""

    def forward(self):
        return torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0], [5.0, 6.0]])


class _FactorBackbone(torch.nn.Module):
    """RecBole's BPR shape: ``forward(user, item)``; the tables are its embedding weights."""

    def __init__(self) -> None:
        super().__init__()
        self.user_embedding = torch.nn.Embedding(1, 2)
        self.item_embedding = torch.nn.Embedding(2, 2)
        with torch.no_grad():
            self.user_embedding.weight.copy_(torch.tensor([[0.5, -0.5]]))
            self.item_embedding.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))

    def forward(self, user, item):
        raise AssertionError("not called with arguments here")


def test_cf_embeddings_of_graph_and_factor_miners():
    """The mining (dns-ui) reads e_i from either backbone shape: the default BPR miner's own weights, a
    LightGCN miner's propagated tables."""
    from recbole_hnlm.stages.cf_mining import cf_embeddings

    users, items = cf_embeddings(_GraphBackbone(), None)
    assert users.tolist() == [[1.0, 2.0]] and items.tolist() == [[3.0, 4.0], [5.0, 6.0]]
    users, items = cf_embeddings(_FactorBackbone(), None)
    assert users.tolist() == [[0.5, -0.5]] and items.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_the_default_miner_is_bpr():
    """The miner's default is linear in |R| per epoch (README: CF supervision); a LightGCN miner is opt-in."""
    assert SupervisionSettings.resolve({}).hnlm_cf_model == "BPR"
