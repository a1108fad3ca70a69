"""HNLMSGL: its contrastive term reads the views that the same step's propagate() made, and only those."""

from __future__ import annotations

import pytest
import torch
from recbole.data import create_dataset, data_preparation

from recbole_hnlm.config import make_config
from tests.conftest import FAST


def test_auxiliary_losses_need_this_steps_propagate(toys_slice, in_tmp):
    from recbole_hnlm.models.sgl import HNLMSGL

    config = make_config("HNLMSGL", toys_slice["dataset"], config_dict={**FAST, **toys_slice["config"]})
    train, _, _ = data_preparation(config, create_dataset(config))
    model = HNLMSGL(config, train._dataset)
    model.train_graph = model.csr2tensor(model.create_adjust_matrix(is_sub=False))
    model.sub_graph1, model.sub_graph2 = (
        model.csr2tensor(model.create_adjust_matrix(is_sub=True)) for _ in range(2)
    )
    users, items = torch.tensor([1, 2]), torch.tensor([3, 4])
    with pytest.raises(RuntimeError, match="propagate"):
        model.auxiliary_losses(users, items, None)
    prop = model.propagate()
    assert len(model.auxiliary_losses(users, items, prop)) == 1
    with pytest.raises(RuntimeError, match="propagate"):  # the views belong to one step
        model.auxiliary_losses(users, items, prop)
