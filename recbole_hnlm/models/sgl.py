"""HNLM-SGL: RecBole's SGL trained with semantic hard negatives.

Wu et al., "Self-supervised Graph Learning for Recommendation", SIGIR 2021; semantic negatives from
Zhao et al., "Hard Negative Sampling via Large Language Models for Recommendation", arXiv 2504.04726.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.general_recommender import SGL

from recbole_hnlm.models.semantic import PluginLossMixin
from recbole_hnlm.negatives.base import layer_mean
from recbole_hnlm.negatives.samplers import Negatives, Propagation
from recbole_hnlm.registry import register_model


@register_model(backbone="SGL")
class HNLMSGL(PluginLossMixin, SGL):
    """SGL with the plugin's loss. Order matters: :meth:`propagate` also propagates the step's two augmented
    views, and :meth:`auxiliary_losses` (called after it by ``calculate_loss``) consumes them."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.semantic_dim = self.embed_dim
        self._views = None
        self.init_semantic(config, dataset)

    def propagate(self) -> Propagation:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        layers = [ego]
        for _ in range(self.n_layers):
            ego = torch.sparse.mm(self.train_graph, ego)
            layers.append(ego)
        final = layer_mean(layers)  # RecBole stacks then averages: same values, no [N, L, d] copy
        # The two augmented views are propagated here, right after the main graph as SGL does, so the
        # backward pass accumulates gradients in SGL's order (bit-identical training at α = λ = 0).
        self._views = (self.forward(self.sub_graph1), self.forward(self.sub_graph2))
        return Propagation.from_layers(final, layers, self.n_users, "mean")

    def bpr_loss(self, pos_score: torch.Tensor, neg_score: torch.Tensor) -> torch.Tensor:
        # SGL sums (not averages) the BPR terms over the batch.
        return torch.sum(-F.logsigmoid(pos_score - neg_score))

    def regularization(self, users, pos_items, negatives: Negatives, user_e, pos_e) -> torch.Tensor:
        neg_ego = self.item_embedding(negatives.ids) if negatives.ids is not None else negatives.ego
        return (
            self.reg_loss(self.user_embedding(users), self.item_embedding(pos_items), neg_ego)
            * self.reg_weight
        )

    def auxiliary_losses(self, users, pos_items, prop: Propagation) -> list[torch.Tensor]:
        # SGL's contrastive term reads the two views that propagate() of this same step computed (they are
        # propagated there, not here, for SGL's gradient order): calculate_loss calls propagate first.
        if self._views is None:
            raise RuntimeError(
                "HNLMSGL.auxiliary_losses needs the views of this step's propagate(): call it first"
            )
        (user_sub1, item_sub1), (user_sub2, item_sub2) = self._views
        self._views = None  # one step's views: a later call without propagate() fails instead of reusing them
        return [self.calc_ssl_loss(users, pos_items, user_sub1, user_sub2, item_sub1, item_sub2)]
