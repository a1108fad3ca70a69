"""The factored store: per-user and per-item encodings composed per pair, in the pair store's format."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
from test_inference import adapter, fake_view  # noqa: F401  (adapter: the tiny LoRA adapter fixture)

from recbole_hnlm.negatives.store import SemanticNegativeStore
from recbole_hnlm.stages import inference_factored
from recbole_hnlm.stages.inference import infer_store, training_pairs
from recbole_hnlm.stages.inference_factored import compose, factor_pairs, infer_factored_store, item_weight
from recbole_hnlm.stages.query_text import QueryBuilder
from recbole_hnlm.stages.supervision_settings import SupervisionSettings

CONFIG = {"hnlm_use_profiles": False, "hnlm_store_mode": "factored"}
DIM = 8


class KnownVectors:
    """Stands in for the loaded adapter: each text gets a fixed unit vector drawn from a hash of the text,
    so a test knows the vector of every user part and item part and can compose h(u, i) itself."""

    dim = DIM

    def __init__(self) -> None:
        self.texts: list[str] = []

    def for_inference(self, *, int8: bool = False, precision: str = "fp32") -> KnownVectors:
        return self

    def tokenize(self, texts, role="query"):
        self.texts = list(texts)
        return [[k] for k in range(len(self.texts))]

    def embed_ids(self, rows, *, batch_size=64, progress=None):
        if progress is not None:
            progress(len(rows))
        return np.stack([self.vector(self.texts[row[0]]) for row in rows])

    @staticmethod
    def vector(text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
        return v / np.linalg.norm(v)


@pytest.fixture
def known(tmp_path, monkeypatch):
    """(the stand-in embedder, an adapter folder with only the embedder.json the stage reads)."""
    model = KnownVectors()
    monkeypatch.setattr(inference_factored, "EmbeddingModel", SimpleNamespace(load=lambda path: model))
    folder = tmp_path / "fake-adapter"
    folder.mkdir()
    info = {"dataset": "toy", "fingerprint": "fake", "supervision_settings": {"hnlm_use_profiles": False}}
    (folder / "embedder.json").write_text(json.dumps(info))
    return model, folder


def keys_of(store: SemanticNegativeStore) -> list[tuple[str, str]]:
    return list(zip(store.user_tokens.tolist(), store.item_tokens.tolist()))


def test_compose_is_the_normalised_weighted_sum():
    users = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    items = np.array([[0.0, 1.0]], dtype=np.float32)
    rows = compose(users, items, np.array([0, 1, 0]), np.array([0, 0, 0]), 0.5)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(rows[0], [s, s], rtol=1e-6)
    mixed = 0.5 * np.array([0.6, 1.8])
    np.testing.assert_allclose(rows[1], mixed / np.linalg.norm(mixed), rtol=1e-6)
    np.testing.assert_allclose(
        compose(users, items, np.array([0]), np.array([0]), 0.25)[0],
        [0.75, 0.25] / np.hypot(0.75, 0.25),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(compose(users, items, np.array([1]), np.array([0]), 1.0), items)
    np.testing.assert_array_equal(compose(users, items, np.array([1]), np.array([0]), 0.0), users[1:])
    # opposite parts at w = 0.5: a zero row, not NaN (the store refuses NaN)
    opposite = compose(users, -users, np.array([0]), np.array([0]), 0.5)
    assert np.isfinite(opposite).all() and not opposite.any()


def test_factor_pairs_indexes_each_user_and_item_once():
    users, items, user_rows, item_rows = factor_pairs(["u1", "u1", "u2"], ["a", "b", "a"])
    assert (users, items) == (["u1", "u2"], ["a", "b"])
    assert user_rows.tolist() == [0, 0, 1] and item_rows.tolist() == [0, 1, 0]


def test_store_rows_are_the_composition_of_the_part_vectors(tmp_path, known):
    model, folder = known
    view = fake_view()
    config = {**CONFIG, "hnlm_factored_item_weight": 0.25}
    store = SemanticNegativeStore(infer_factored_store(config, tmp_path, folder, view=view, progress=False))
    builder = QueryBuilder.build(view, None, SupervisionSettings(hnlm_use_profiles=False))
    users, items = training_pairs(view)
    # one text per user and one per item, each a part of that user's or item's queries
    assert sorted(model.texts) == sorted(
        [builder.user_part(u) for u in dict.fromkeys(users)] + [builder.item_part(i) for i in set(items)]
    )
    for row, (user, item) in enumerate(keys_of(store)):
        mixed = 0.25 * model.vector(builder.item_part(item)) + 0.75 * model.vector(builder.user_part(user))
        np.testing.assert_allclose(store.vectors[row], mixed / np.linalg.norm(mixed), atol=1e-3)  # float16
    meta = store.meta
    assert meta.producer == "hnlmrec-finetuned-factored" and meta.details["store_mode"] == "factored"
    assert meta.details["item_weight"] == 0.25
    assert meta.details["encodings"] == {"users": len(set(users)), "items": len(set(items))}


def test_store_rows_are_every_training_pair_and_only_them(tmp_path, known):
    _, folder = known
    view = fake_view()  # u0 repeats an interaction: still one row
    store = SemanticNegativeStore(infer_factored_store(CONFIG, tmp_path, folder, view=view, progress=False))
    keys = keys_of(store)
    expected = {(u, i) for u, history in view.histories.items() for i in history}
    assert len(keys) == len(set(keys)) == len(expected) and set(keys) == expected
    assert store.meta.dataset_fingerprint == view.dataset_fingerprint


def test_the_tiny_adapter_gives_the_same_store_twice(tmp_path, adapter):  # noqa: F811
    view = fake_view()
    first = SemanticNegativeStore(
        infer_factored_store(CONFIG, tmp_path / "a", adapter, view=view, progress=False)
    )
    again = SemanticNegativeStore(
        infer_factored_store(CONFIG, tmp_path / "b", adapter, view=view, progress=False)
    )
    assert keys_of(first) == keys_of(again)
    np.testing.assert_array_equal(np.asarray(first.vectors), np.asarray(again.vectors))
    assert first.meta.details["fingerprint"] == again.meta.details["fingerprint"]


def test_modes_and_weights_have_their_own_fingerprints_and_folders(tmp_path, adapter):  # noqa: F811
    view = fake_view()
    pair = infer_store({"hnlm_use_profiles": False}, tmp_path, adapter, view=view, progress=False)
    factored = infer_factored_store(CONFIG, tmp_path, adapter, view=view, progress=False)
    assert (pair.name, factored.name) == ("hnlm", "hnlm-factored")
    pair_meta, factored_meta = SemanticNegativeStore(pair).meta, SemanticNegativeStore(factored).meta
    assert pair_meta.details["fingerprint"] != factored_meta.details["fingerprint"]
    assert pair_meta.config_fingerprint != factored_meta.config_fingerprint
    # the same settings reuse the store; another weight rebuilds it
    stamp = (factored / "meta.json").stat().st_mtime_ns
    assert infer_factored_store(CONFIG, tmp_path, adapter, view=view, progress=False) == factored
    assert (factored / "meta.json").stat().st_mtime_ns == stamp
    heavier = {**CONFIG, "hnlm_factored_item_weight": 0.9}
    infer_factored_store(heavier, tmp_path, adapter, view=view, progress=False)
    assert SemanticNegativeStore(factored).meta.details["fingerprint"] != factored_meta.details["fingerprint"]


@pytest.mark.parametrize("bad", [-0.1, 1.5, "heavy", None])
def test_a_bad_weight_names_the_key(bad):
    if bad is None:  # unset: the yaml's default, a valid weight
        assert 0.0 <= item_weight({"hnlm_factored_item_weight": None}) <= 1.0
        return
    with pytest.raises(ValueError, match=r"'hnlm_factored_item_weight'.*\[0, 1\]"):
        item_weight({"hnlm_factored_item_weight": bad})


def test_training_reads_the_factored_store(toys_slice, in_tmp, known):
    """Every training pair of the toys slice's split has its row: training with semantic_missing: error
    (the default) runs an epoch without a missing pair."""
    from recbole_hnlm.config import make_config
    from recbole_hnlm.data.fingerprint import dataset_fingerprint
    from recbole_hnlm.data.splits import interaction_tokens, load_split
    from recbole_hnlm.llm.prompts import ItemRecord
    from recbole_hnlm.quick_start import run_hnlm
    from recbole_hnlm.stages.common import TrainingView
    from tests.conftest import FAST

    _, folder = known
    config = {**FAST, **toys_slice["config"]}
    split = load_split(make_config("HNLMLightGCN", toys_slice["dataset"], config_dict=config))
    histories: dict[str, list[str]] = {}
    users, items = interaction_tokens(split.train)
    for user, item in zip(users.tolist(), items.tolist()):
        histories.setdefault(str(user), []).append(str(item))
    records = {str(i): ItemRecord(str(i), {"title": f"toy {i}"}) for i in set(items.tolist())}
    view = TrainingView(toys_slice["dataset"], dataset_fingerprint(split.dataset), records, histories, {})
    store = infer_factored_store(CONFIG, in_tmp, folder, view=view, progress=False)
    record = run_hnlm("LightGCN", toys_slice["dataset"], "hnlm-mix", str(store), config_dict=config)
    assert record["missing_semantic_pairs"] == 0
