"""The default HNLMRec pipeline: cold run builds every stage, warm run reuses them all."""

from __future__ import annotations

import torch
from hnlm_tiny import save_tiny

from recbole_hnlm.negatives.store import SemanticNegativeStore

torch.set_num_threads(1)


def test_pipeline_builds_then_reuses_every_stage(in_tmp, capsys):
    from recbole_hnlm.config import make_config
    from recbole_hnlm.data.splits import interaction_tokens, load_split
    from recbole_hnlm.pipeline import ensure_hnlm_store

    encoder = save_tiny(in_tmp / "tiny-encoder", "encoder")
    config = make_config(
        "HNLMLightGCN",
        "ml-100k",
        config_dict={
            "val_interval": {"rating": "[5,5]"},
            "hnlm_use_profiles": False,  # no LLM here; the profile stage has its own tests
            "hnlm_cf_epochs": 1,
            "hnlm_sup_size": 64,
            "hnlm_embedder_model": str(encoder),
            "hnlm_ft_batch_size": 16,
            "hnlm_query_max_len": 48,
            "hnlm_infer_chunk": 4096,
            "embedding_size": 16,
            "state": "ERROR",
            "show_progress": False,
        },
    )
    store_dir = ensure_hnlm_store(config, progress=False)
    store = SemanticNegativeStore(store_dir)
    users, items = interaction_tokens(load_split(config).train)
    assert len(store) == len(set(zip(users.tolist(), items.tolist())))
    assert store.meta.producer == "hnlmrec-finetuned"
    cold = capsys.readouterr().out
    assert "supervision: built" in cold and "finetune: built" in cold and "inference: built" in cold

    assert ensure_hnlm_store(config, progress=False) == store_dir
    warm = capsys.readouterr().out
    for stage in ("supervision", "finetune", "inference"):
        assert f"{stage}: reused" in warm, warm
    store.bind(load_split(config).dataset)  # the store belongs to the dataset training will use
