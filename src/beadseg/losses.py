"""Segmentation losses: smp's own, and weighted sums of them that config files can name."""

from __future__ import annotations

import torch
from torch import nn


class WeightedLoss(nn.Module):
    """``sum(weights[k] * terms[k](logits, target))``, e.g. BCE 0.5 + Dice 0.5 or Dice 0.7 + Focal 0.3."""

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float]):
        super().__init__()
        if set(terms) != set(weights):
            raise ValueError(f"loss.weights keys {sorted(weights)} must match loss.terms keys {sorted(terms)}")
        self.terms = nn.ModuleDict(terms)
        self.weights = dict(weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self.weights[name] * term(logits, target) for name, term in self.terms.items())
