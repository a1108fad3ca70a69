"""The item-vectors stage: passages, normalised rows, reuse by fingerprint, rebuild on other settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recbole_hnlm.io import ForeignPathError
from recbole_hnlm.llm.prompts import ItemRecord
from recbole_hnlm.negatives.item_vectors import ITEM_VECTORS_FORMAT, VECTORS_FILE
from recbole_hnlm.stages.common import TrainingView
from recbole_hnlm.stages.item_vectors import ensure_item_vectors, item_passage, item_vectors_dir


class CountingEmbedder:
    """Embeds a text as (length, number of words); counts the texts it was asked for."""

    name = "counting"
    model = "counting/v1"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        return np.array([[len(t), len(t.split())] for t in texts], dtype=np.float32)


def view(text_fields=("title", "genre")) -> TrainingView:
    items = {
        "7": ItemRecord("7", {"title": "Toy Story", "genre": "Animation"}),
        "9": ItemRecord("9", {"title": "", "genre": ""}),
    }
    return TrainingView("demo", "fp-demo", items, {"u1": ["7"]}, {}, {"text_fields": list(text_fields)})


def test_an_item_passage_is_its_fields_or_its_token():
    assert item_passage(ItemRecord("7", {"title": "Toy Story", "genre": "Animation"})) == (
        "title: Toy Story; genre: Animation"
    )
    assert item_passage(ItemRecord("9", {"title": ""})) == "9"


def test_vectors_are_normalised_counted_reused_and_rebuilt_on_other_settings(tmp_path):
    embedder = CountingEmbedder()
    folder = item_vectors_dir(tmp_path, embedder.model)
    assert folder == tmp_path / "item_vectors" / "counting_v1"
    ensure_item_vectors(view(), embedder, folder)
    assert embedder.texts == ["title: Toy Story; genre: Animation", "9"]
    vectors = np.load(folder / VECTORS_FILE)
    passage = "title: Toy Story; genre: Animation"
    expected = np.array([len(passage), 5.0]) / np.hypot(len(passage), 5.0)
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format"] == ITEM_VECTORS_FORMAT and meta["items_without_text"] == 1
    assert (folder / "tokens.txt").read_text().splitlines() == ["7", "9"]
    ensure_item_vectors(view(), embedder, folder)  # same dataset, embedder, fields: reused
    assert len(embedder.texts) == 2
    ensure_item_vectors(view(("title",)), embedder, folder)  # other text fields: rebuilt
    assert len(embedder.texts) == 4


def test_a_foreign_folder_is_not_replaced(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ForeignPathError, match="mine"):
        ensure_item_vectors(view(), CountingEmbedder(), folder)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_an_adapter_embeds_item_passages_in_its_own_passage_space(tmp_path):
    from recbole_hnlm.llm.embedding_model import EmbeddingModel
    from recbole_hnlm.stages.finetune import finetune
    from recbole_hnlm.stages.item_vectors import AdapterPassageEmbedder
    from tests.stages.test_finetune import fast_settings, save_tiny, triples

    base = save_tiny(tmp_path / "encoder", "encoder")
    finetune(triples(32, seed=1), tmp_path / "embedder", fast_settings(str(base), hnlm_ft_epochs=1))
    embedder = AdapterPassageEmbedder(tmp_path / "embedder")
    assert embedder.model.startswith("embedder-")
    texts = ["title: Toy Story; genre: Animation", "9"]
    expected = EmbeddingModel.load(tmp_path / "embedder").embed(texts, role="passage")
    np.testing.assert_allclose(embedder.embed(texts), expected, rtol=1e-5, atol=1e-6)
    folder = ensure_item_vectors(view(), embedder, item_vectors_dir(tmp_path, embedder.model))
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["settings"]["embedder"] == "hnlm-adapter"


def test_semdns_with_a_given_store_needs_that_stores_item_vectors():
    from recbole_hnlm.pipeline import text_sampler_inputs

    config = {"semdns_query": "store", "semdns_store": "some/store", "item_vectors": None}
    with pytest.raises(ValueError, match="item_vectors"):
        text_sampler_inputs(config)
    assert text_sampler_inputs({**config, "item_vectors": "v"}) == {}


def test_two_runs_building_the_same_vectors_embed_once(tmp_path):
    import threading
    import time

    class SlowEmbedder(CountingEmbedder):
        def embed(self, texts):
            time.sleep(0.5)  # the second run arrives while the first is embedding
            return super().embed(texts)

    embedder = SlowEmbedder()
    folder = item_vectors_dir(tmp_path, embedder.model)
    errors = []

    def build():
        try:
            ensure_item_vectors(view(), embedder, folder)
        except BaseException as exc:  # reported below
            errors.append(exc)

    runs = [threading.Thread(target=build) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    assert errors == [] and len(embedder.texts) == 2  # 2 items, embedded by one run; the other reused them


def test_the_item_vectors_command_embeds_every_ml100k_item_once(in_tmp, capsys):
    from recbole_hnlm.cli import main

    assert main(["item-vectors", "--dataset", "ml-100k", "--no_progress"]) == 0
    folder = in_tmp / "artifacts" / "ml-100k" / "item_vectors" / "all-MiniLM-L6-v2"
    assert f"item vectors: {folder.relative_to(in_tmp)}" in capsys.readouterr().out
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["count"] == 1682 and meta["dim"] == 384 and meta["items_without_text"] == 0
    assert meta["settings"]["text_fields"] == ["movie_title", "release_year", "class"]
    assert len((folder / "tokens.txt").read_text().splitlines()) == 1682
