"""Every loss config against values worked out by hand."""

import math

import pytest
import torch
from hydra.utils import instantiate

# probabilities 0.8, 0.6, 0.1, 0.3 against truth 1, 1, 0, 0
PROBABILITIES = torch.tensor([0.8, 0.6, 0.1, 0.3]).reshape(1, 1, 2, 2)
TARGET = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
LOGITS = torch.logit(PROBABILITIES)

BCE = -(math.log(0.8) + math.log(0.6) + math.log(0.9) + math.log(0.7)) / 4
DICE = 1 - 2 * 1.4 / (1.8 + 2.0)  # intersection 1.4, sum of probabilities 1.8, of truth 2
FOCAL = (0.2**2 * -math.log(0.8) + 0.4**2 * -math.log(0.6) + 0.1**2 * -math.log(0.9) + 0.3**2 * -math.log(0.7)) / 4
TVERSKY = 1 - 1.4 / (1.4 + 0.3 * 0.4 + 0.7 * 0.6)  # TP 1.4, FP 0.4, FN 0.6, alpha 0.3, beta 0.7


@pytest.mark.parametrize(
    "name, expected",
    [
        ("bce", BCE),
        ("dice", DICE),
        ("focal", FOCAL),
        ("tversky", TVERSKY),
        ("bce_dice", 0.5 * BCE + 0.5 * DICE),
        ("dice_focal", 0.7 * DICE + 0.3 * FOCAL),
    ],
)
def test_loss_matches_hand_computed_value(compose_config, name, expected):
    loss = instantiate(compose_config("train", [f"loss={name}"]).loss)
    assert loss(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-5)


def test_loss_parameters_are_overridable(compose_config):
    loss = instantiate(compose_config("train", ["loss=tversky", "loss.alpha=0.5", "loss.beta=0.5"]).loss)
    assert loss(LOGITS, TARGET).item() == pytest.approx(DICE, rel=1e-5)  # Tversky(0.5, 0.5) is Dice
    weighted = instantiate(compose_config("train", ["loss=bce_dice", "loss.weights.bce=1.0", "loss.weights.dice=0.0"]).loss)
    assert weighted(LOGITS, TARGET).item() == pytest.approx(BCE, rel=1e-5)


def test_weighted_loss_rejects_mismatched_keys():
    from beadseg.losses import WeightedLoss

    with pytest.raises(ValueError, match="must match"):
        WeightedLoss({"bce": torch.nn.BCEWithLogitsLoss()}, {"dice": 1.0})
