"""HNLM-MF: matrix factorisation with BPR (RecBole's ``BPR``) plus semantic hard negatives.

One model under three names: ``--model MF`` and ``--model BPR`` are aliases (``registry.MODEL_ALIASES``) of
``HNLMBPR``, named after the RecBole model it extends; tables call it MF, the paper's name.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009; semantic negatives
from Zhao et al., "Hard Negative Sampling via Large Language Models for Recommendation", arXiv 2504.04726.
"""

from __future__ import annotations

import torch
from recbole.model.general_recommender import BPR

from recbole_hnlm.models.semantic import PluginLossMixin
from recbole_hnlm.negatives.samplers import Propagation
from recbole_hnlm.registry import register_model


@register_model(backbone="BPR")
class HNLMBPR(PluginLossMixin, BPR):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.semantic_dim = self.embedding_size
        self.init_semantic(config, dataset)

    def propagate(self) -> Propagation:
        # MF has no layers: the ego embeddings are the final ones (MixGCF then mixes positives only).
        user, item = self.user_embedding.weight, self.item_embedding.weight
        return Propagation(user=user, item=item, user_layers=[user], item_layers=[item])

    def bpr_loss(self, pos_score: torch.Tensor, neg_score: torch.Tensor) -> torch.Tensor:
        return self.loss(pos_score, neg_score)
