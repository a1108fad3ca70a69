"""Item text vectors: one embedding per item, the space in which the semantic candidate pool is searched.

An item's passage is what the fine-tuned embedder sees for it (:func:`item_passage`: its text fields
joined as ``field: value; ...``). Items without text are described by their token and counted in
``meta.json`` (``items_without_text``), never hidden. The cost is one embedding per item, |I|, independent
of the interactions and of the split (ml-100k: 1,682 passages; toys: 11,924), so the artefact is keyed
by the dataset and the embedder only and is reused across splits and seeds.

The folder is ``<artifact_dir>/<dataset>/item_vectors/<embedder model>/``, in the format of
:mod:`recbole_hnlm.negatives.item_vectors`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from recbole_hnlm.io import artefact_lock, config_fingerprint
from recbole_hnlm.llm.cpu_runtime import embedding_threads, infer_threads
from recbole_hnlm.llm.prompts import ItemRecord
from recbole_hnlm.negatives.item_vectors import read_meta, write_item_vectors

ITEM_VECTORS_DIR = "item_vectors"


def item_passage(record: ItemRecord) -> str:
    """The text an embedder sees for an item: ``field: value`` pairs, or its token when it has no text."""
    return "; ".join(f"{k}: {v}" for k, v in record.info.items() if v) or record.token


def item_vectors_dir(root: Path, embedder_model: str) -> Path:
    """``<root>/item_vectors/<embedder model>``, the model name made safe for a folder name."""
    return Path(root) / ITEM_VECTORS_DIR / re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_model)


def vectors_settings(view: Any, embedder: Any) -> dict[str, Any]:
    """What the vectors depend on besides the dataset: the text columns and the embedder."""
    return {
        "text_fields": list(view.config["text_fields"] or []) if view.config is not None else None,
        "embedder": getattr(embedder, "name", type(embedder).__name__),
        "embedder_model": getattr(embedder, "model", None),
    }


def build_item_vectors(view: Any, embedder: Any, folder: Path) -> Path:
    """Embed every item passage of ``view`` with ``embedder`` (``.embed(texts)``) into ``folder``."""
    tokens = list(view.items)
    passages = [item_passage(view.items[t]) for t in tokens]
    start = time.perf_counter()
    # a local embedder's torch threads follow the CPU affinity (or hnlm_infer_threads); restored after
    with embedding_threads(infer_threads(view.config)):
        vectors = embedder.embed(passages)
    settings = vectors_settings(view, embedder)
    meta = {
        "dataset": view.dataset,
        "dataset_fingerprint": view.dataset_fingerprint,
        "config_fingerprint": config_fingerprint(settings),
        "settings": settings,
        "items_without_text": sum(1 for t in tokens if not any(view.items[t].info.values())),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return write_item_vectors(folder, tokens, vectors, meta)


def ensure_item_vectors(view: Any, embedder: Any, folder: Path) -> Path:
    """``folder`` if it holds vectors of this dataset, embedder and text fields; else they are built.

    Checked under the folder's lock: a concurrent run waits for this one's vectors, then reuses them."""
    with artefact_lock(folder):
        meta = read_meta(folder)
        settings = vectors_settings(view, embedder)
        if (
            meta is not None
            and meta.get("dataset_fingerprint") == view.dataset_fingerprint
            and meta.get("config_fingerprint") == config_fingerprint(settings)
        ):
            return folder
        return build_item_vectors(view, embedder, folder)


class AdapterPassageEmbedder:
    """A fine-tuned embedder (``recbole-hnlm finetune``) embedding item passages: the space its query
    embeddings h live in, so that semdns can look up the items nearest to a stored h."""

    name = "hnlm-adapter"

    def __init__(self, adapter_dir: str | Path, batch_size: int = 64) -> None:
        from recbole_hnlm.io import fingerprint
        from recbole_hnlm.llm.embedding_model import EmbeddingModel, read_adapter_info

        self.encoder = EmbeddingModel.load(adapter_dir).for_inference()  # LoRA merged: same vectors, faster
        info = read_adapter_info(adapter_dir)
        # the folder name says which adapter; the fingerprint of its info tells two trainings apart
        self.model = f"{Path(adapter_dir).name}-{fingerprint(info)[:12]}"
        self.batch_size = batch_size

    def embed(self, texts: list[str]):
        return self.encoder.embed(texts, role="passage", batch_size=self.batch_size)
