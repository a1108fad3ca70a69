"""SimGCL on RecBole's core LightGCN, and its HNLM variant.

Yu et al., "Are Graph Augmentations Necessary? Simple Graph Contrastive Learning for Recommendation",
SIGIR 2022. Each layer's output gets a random perturbation ``sign(e) ⊙ normalize(Δ)·ε``; two perturbed
views of the batch's users and positive items are contrasted with InfoNCE (temperature τ), weighted by
λ. As in the paper, the final embedding averages layers 1..L (the ego layer is left out). RecBole core has
no SimGCL and RecBole-GNN's needs torch_sparse; this one multiplies by the adjacency as CSR
(:mod:`recbole_hnlm.models.graph`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.general_recommender import LightGCN

from recbole_hnlm.models.graph import graph_of
from recbole_hnlm.models.lightgcn import LightGCNHooks
from recbole_hnlm.models.losses import info_nce
from recbole_hnlm.negatives.base import layer_mean
from recbole_hnlm.registry import register_model


@register_model(backbone=None, uses_plugin_loader=False)
class SimGCL(LightGCN):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.cl_weight = config["lambda"]
        self.eps = config["eps"]
        self.temperature = config["temperature"]

    def perturbed_layers(self, perturbed: bool) -> list[torch.Tensor]:
        propagate = graph_of(self, "norm_adj_matrix")
        all_embeddings = self.get_ego_embeddings()
        layers = []
        for _ in range(self.n_layers):
            all_embeddings = propagate(all_embeddings)
            if perturbed:
                noise = torch.rand_like(all_embeddings)
                all_embeddings = (
                    all_embeddings + torch.sign(all_embeddings) * F.normalize(noise, dim=-1) * self.eps
                )
            layers.append(all_embeddings)
        return layers

    def forward(self, perturbed: bool = False):
        final = layer_mean(self.perturbed_layers(perturbed))  # as stack + mean, without the copy
        return torch.split(final, [self.n_users, self.n_items])

    def contrastive_loss(self, users: torch.Tensor, pos_items: torch.Tensor) -> torch.Tensor:
        users, pos_items = torch.unique(users), torch.unique(pos_items)
        user_v1, item_v1 = self.forward(perturbed=True)
        user_v2, item_v2 = self.forward(perturbed=True)
        user_cl = info_nce(user_v1[users], user_v2[users], self.temperature)
        item_cl = info_nce(item_v1[pos_items], item_v2[pos_items], self.temperature)
        return self.cl_weight * (user_cl + item_cl)

    def calculate_loss(self, interaction):
        loss = super().calculate_loss(interaction)
        return loss, self.contrastive_loss(interaction[self.USER_ID], interaction[self.ITEM_ID])


@register_model(backbone="SimGCL")
class HNLMSimGCL(LightGCNHooks, SimGCL):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.semantic_dim = self.latent_dim
        self.init_semantic(config, dataset)

    def pooled_layers(self) -> list[torch.Tensor]:
        return self.perturbed_layers(perturbed=False)

    def auxiliary_losses(self, users, pos_items, prop) -> list[torch.Tensor]:
        return [self.contrastive_loss(users, pos_items)]
