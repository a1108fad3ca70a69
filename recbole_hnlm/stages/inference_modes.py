"""Which inference builds the HNLMRec store (``hnlm_store_mode``), how many encodings it costs, and the
``recbole-hnlm infer`` command that runs it.

``pair`` (:mod:`recbole_hnlm.stages.inference`) embeds one query per training interaction; ``factored``
(:mod:`recbole_hnlm.stages.inference_factored`) embeds each user's and each item's part of the query once.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from recbole_hnlm.stages.cli import configure_infer as configure_parser  # noqa: F401  (recbole-hnlm infer)
from recbole_hnlm.stages.inference import infer_store, store_name, training_pairs
from recbole_hnlm.stages.inference_factored import infer_factored_store
from recbole_hnlm.stages.store_modes import FACTORED, store_mode


def encodings(view: Any, mode: str) -> tuple[int, int]:
    """(texts the embedder runs on, training pairs the store holds) for ``mode``: |R| and |R| for pair,
    |U| + |I| (the users and items of the training pairs) and |R| for factored."""
    users, items = training_pairs(view)
    texts = len(users) if mode == "pair" else len(set(users)) + len(set(items))
    return texts, len(users)


def store_folder(root: Path, adapter_info: dict[str, Any], view: Any, mode: str) -> Path:
    return root / "negatives" / store_name(adapter_info, view.dataset, mode)


def build_store(config: Any, root: Path, adapter_dir: str | Path, **options: Any) -> Path:
    """The store of ``config``'s mode (``options``: view, out, batch_size, progress, force)."""
    if store_mode(config) == FACTORED:
        return infer_factored_store(config, root, adapter_dir, **options)
    return infer_store(config, root, adapter_dir, **options)


def run(args: argparse.Namespace) -> int:
    from recbole_hnlm.stages.common import artifact_dir, stage_config
    from recbole_hnlm.stages.finetune import EMBEDDER_DIR

    config = stage_config(args)
    root = artifact_dir(config)
    adapter = Path(args.embedder) if args.embedder else root / EMBEDDER_DIR
    if not (adapter / "embedder.json").is_file():
        raise SystemExit(
            f"{adapter / 'embedder.json'} not found: run `recbole-hnlm finetune` first or pass --embedder"
        )
    out = build_store(
        config,
        root,
        adapter,
        out=Path(args.out) if args.out else None,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        force=args.force,
    )
    print(f"store: {out}")
    return 0
