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


class CentreFocalLoss(nn.Module):
    """The penalty-reduced focal loss of CornerNet/CenterNet for a bead-centre heat-map (Gaussian peaks of 1):
    peaks are positives, every other pixel a negative whose weight ``(1 - target)**beta`` fades near a peak.
    Normalised by the number of peaks; pixels whose target is ``ignore_index`` are left out."""

    def __init__(self, alpha: float = 2.0, beta: float = 4.0, ignore_index: float = -1) -> None:
        super().__init__()
        self.alpha, self.beta, self.ignore_index = alpha, beta, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = logits.float(), target.float()
        valid = target != self.ignore_index
        target = target.clamp(0, 1)
        peak = (target >= 0.999) & valid
        probability = torch.sigmoid(logits)
        log_p, log_not_p = nn.functional.logsigmoid(logits), nn.functional.logsigmoid(-logits)
        positive = (1 - probability) ** self.alpha * log_p * peak
        negative = (1 - target) ** self.beta * probability**self.alpha * log_not_p * (valid & ~peak)
        return -(positive.sum() + negative.sum()) / peak.sum().clamp(min=1)
