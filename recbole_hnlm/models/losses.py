"""Losses shared by the models: written once, imported by each model that contrasts two sets of rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean InfoNCE of row i of ``query`` against row i of ``key``, the other rows of ``key`` as negatives
    (cosine similarities over ``temperature``): SimGCL's two perturbed views, RLMRec's CF embeddings and
    mapped profiles."""
    query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    logits = query @ key.T / temperature
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()
