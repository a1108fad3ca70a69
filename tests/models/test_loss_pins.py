"""The training losses are pinned under a fixed seed: speed work on the loss path must not change them.

Each case trains one epoch on the first 300 users of toys and compares every loss part, summed over the
epoch, with the value the straightforward implementation gave (recorded when the faster code replaced it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

from recbole_hnlm.config import make_config
from recbole_hnlm.negatives.store import SemanticNegativeStore, write_store
from tests.conftest import FAST, build_store_for

# epoch loss parts (ranking [+ CL] [+ factor loss]) recorded before the loss path was optimised
PINNED = {
    "store": [6.21718442440033, 0.2372586913406849, 6.201248049736023, 0.13415184151381254],
    "store-partial": [6.217959880828857, 0.24282286502420902, 6.203311622142792, 0.12944079004228115],
    "dens": [6.233754098415375, 1.8715683817863464, 6.189951777458191, 1.870978057384491],
}
CASES = {
    "store": {"semantic_alpha": 0.5, "semantic_cl_weight": 0.1},
    "store-partial": {"semantic_alpha": 0.5, "semantic_cl_weight": 0.1, "semantic_missing": "random"},
    "dens": {"neg_sampler": "dens", "dens_candidates": 8, "dens_warmup": 2},
}


@pytest.fixture(scope="module")
def stores(toys_slice, tmp_path_factory):
    config = {**FAST, **toys_slice["config"]}
    folder = tmp_path_factory.mktemp("pins")
    full = build_store_for("HNLMLightGCN", toys_slice["dataset"], config, folder / "full", dim=12)
    partial = build_store_for("HNLMLightGCN", toys_slice["dataset"], config, folder / "partial", dim=12)
    # a store without every third training pair: those rows keep the sampler's negative and skip L_CL
    store = SemanticNegativeStore(partial)
    keep = np.arange(len(store)) % 3 != 0
    write_store(
        folder / "partial-kept",
        store.user_tokens[keep],
        store.item_tokens[keep],
        np.asarray(store.vectors, dtype=np.float32)[keep],
        producer="test",
        dataset=store.meta.dataset,
        dataset_fingerprint=store.meta.dataset_fingerprint,
    )
    return {"store": full, "store-partial": folder / "partial-kept"}


def epoch_loss_parts(dataset: str, config_dict: dict) -> list[float]:
    config = make_config("HNLMLightGCN", dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("HNLMLightGCN")(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "HNLMLightGCN")(config, model)
    losses = [trainer._train_epoch(train_data, epoch) for epoch in range(2)]  # DENS's warm-up moves
    return [float(x) for loss in losses for x in (loss if isinstance(loss, tuple) else (loss,))]


@pytest.mark.parametrize("case", list(CASES))
def test_epoch_losses_are_pinned(case, toys_slice, stores, in_tmp):
    config = {**FAST, **toys_slice["config"], "learning_rate": 0.002, "train_batch_size": 512, **CASES[case]}
    if case in stores:
        config["semantic_negatives"] = str(stores[case])
    parts = epoch_loss_parts(toys_slice["dataset"], config)
    assert parts == pytest.approx(PINNED[case], rel=1e-5)


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
def test_layer_mean_is_recbole_stack_and_mean_bit_for_bit(n_layers):
    from recbole_hnlm.negatives.base import layer_mean

    generator = torch.Generator().manual_seed(n_layers)
    layers = [torch.randn(3001, 64, generator=generator) for _ in range(n_layers)]
    assert torch.equal(layer_mean(layers), torch.mean(torch.stack(layers, dim=1), dim=1))


def test_the_alignment_loss_keeps_the_cosine_logsumexp_value_and_gradients():
    from recbole_hnlm.models.semantic import alignment_loss

    generator = torch.Generator().manual_seed(0)
    leaves = [torch.randn(257, 16, generator=generator, requires_grad=True) for _ in range(3)]
    u, i, h = leaves
    pos = F.cosine_similarity(u, i, dim=-1) / 0.2
    neg = F.cosine_similarity(u, h, dim=-1) / 0.2
    reference = (torch.logsumexp(torch.stack([pos, neg], dim=-1), dim=-1) - pos).mean()
    expected = torch.autograd.grad(reference, leaves)
    value = alignment_loss(u, i, h, 0.2, F.normalize(h, dim=-1))
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)
    for got, want in zip(torch.autograd.grad(value, leaves), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
