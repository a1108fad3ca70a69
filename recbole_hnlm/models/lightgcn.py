"""HNLM-LightGCN: RecBole's LightGCN trained with semantic hard negatives.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation", SIGIR 2020;
semantic negatives from Zhao et al., "Hard Negative Sampling via Large Language Models for
Recommendation", arXiv 2504.04726.
"""

from __future__ import annotations

import torch
from recbole.model.general_recommender import LightGCN

from recbole_hnlm.models.graph import graph_of
from recbole_hnlm.models.semantic import PluginLossMixin
from recbole_hnlm.negatives.base import layer_mean
from recbole_hnlm.negatives.samplers import Negatives, Propagation
from recbole_hnlm.registry import register_model


class LightGCNHooks(PluginLossMixin):
    """Backbone hooks for LightGCN and models built on its propagation (SimGCL)."""

    def layer_embeddings(self) -> list[torch.Tensor]:
        """``[E^0, E^1, ..., E^L]`` over users+items, the same operations as ``LightGCN.forward``."""
        propagate = graph_of(self, "norm_adj_matrix")  # the adjacency as CSR (models/graph.py says why)
        all_embeddings = self.get_ego_embeddings()
        layers = [all_embeddings]
        for _ in range(self.n_layers):
            all_embeddings = propagate(all_embeddings)
            layers.append(all_embeddings)
        return layers

    def pooled_layers(self) -> list[torch.Tensor]:
        """The layers whose mean is the final embedding."""
        return self.layer_embeddings()

    def propagate(self) -> Propagation:
        layers = self.pooled_layers()
        final = layer_mean(layers)  # RecBole stacks then averages: same values, no [N, L, d] copy
        # item_ego: SimGCL's pooled layers leave out layer 0
        return Propagation.from_layers(
            final, layers, self.n_users, "mean", item_ego=self.item_embedding.weight
        )

    def bpr_loss(self, pos_score: torch.Tensor, neg_score: torch.Tensor) -> torch.Tensor:
        return self.mf_loss(pos_score, neg_score)

    def regularization(self, users, pos_items, negatives: Negatives, user_e, pos_e) -> torch.Tensor:
        # LightGCN regularises the layer-0 (ego) embeddings of the user, the positive and the negative.
        neg_ego = self.item_embedding(negatives.ids) if negatives.ids is not None else negatives.ego
        reg = self.reg_loss(
            self.user_embedding(users), self.item_embedding(pos_items), neg_ego, require_pow=self.require_pow
        )
        return self.reg_weight * reg


@register_model(backbone="LightGCN")
class HNLMLightGCN(LightGCNHooks, LightGCN):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.semantic_dim = self.latent_dim
        self.init_semantic(config, dataset)
