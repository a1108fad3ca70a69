"""HNLM-NGCF: RecBole's NGCF trained with semantic hard negatives.

Wang et al., "Neural Graph Collaborative Filtering", SIGIR 2019; semantic negatives from Zhao et al.,
"Hard Negative Sampling via Large Language Models for Recommendation", arXiv 2504.04726.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.general_recommender import NGCF
from torch import nn

from recbole_hnlm.models.semantic import PluginLossMixin
from recbole_hnlm.negatives.samplers import Negatives, Propagation
from recbole_hnlm.registry import register_model


@register_model(backbone="NGCF")
class HNLMNGCF(PluginLossMixin, NGCF):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # NGCF concatenates the ego embedding and every layer's output.
        self.semantic_dim = sum(self.hidden_size_list)
        self.init_semantic(config, dataset)

    def propagate(self) -> Propagation:
        # The same operations, in the same order, as NGCF.forward (dropout draws included).
        adj = self.sparse_dropout(self.norm_adj_matrix) if self.node_dropout != 0 else self.norm_adj_matrix
        all_embeddings = self.get_ego_embeddings()
        layers = [all_embeddings]
        for gnn in self.GNNlayers:
            all_embeddings = gnn(adj, self.eye_matrix, all_embeddings)
            all_embeddings = nn.LeakyReLU(negative_slope=0.2)(all_embeddings)
            all_embeddings = self.emb_dropout(all_embeddings)
            all_embeddings = F.normalize(all_embeddings, p=2, dim=1)
            layers.append(all_embeddings)
        return Propagation.from_layers(torch.cat(layers, dim=1), layers, self.n_users, "concat")

    def bpr_loss(self, pos_score: torch.Tensor, neg_score: torch.Tensor) -> torch.Tensor:
        return self.mf_loss(pos_score, neg_score)

    def regularization(self, users, pos_items, negatives: Negatives, user_e, pos_e) -> torch.Tensor:
        # NGCF regularises the propagated embeddings; the negative's is the sampler's, before mixing.
        return self.reg_weight * self.reg_loss(user_e, pos_e, negatives.emb)
