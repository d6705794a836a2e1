"""Which pixels drive a classifier's decision: Captum attributions drawn green (toward) and red (away)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import imageio.v3 as iio
import numpy as np
import torch

from beadseg import plots
from beadseg.checkpoint import load_network
from beadseg.data.io import BeadDataError, Normalization, image_name, read_image
from beadseg.data.readers import DEFAULT_PLANE, PlaneChoice
from beadseg.tables import write_csv

METHODS = ("integrated_gradients", "occlusion")


def _captum():
    try:
        import captum.attr
    except ImportError as error:
        raise ImportError(
            "beadseg-explain needs Captum: pip install 'beadseg[explain]' (or pip install captum)"
        ) from error
    return captum.attr


def attribute(net: torch.nn.Module, image: torch.Tensor, target: int, method: str, window: int = 8) -> np.ndarray:
    """Attribution of every pixel of ``image`` (1, 1, H, W) to class ``target``: positive pushes toward it."""
    attr = _captum()
    net.eval()
    if method == "integrated_gradients":
        values = attr.IntegratedGradients(net).attribute(
            image, baselines=torch.zeros_like(image), target=target, n_steps=32
        )
    elif method == "occlusion":
        stride = max(window // 2, 1)
        values = attr.Occlusion(net).attribute(image, target=target, sliding_window_shapes=(1, window, window),
                                               strides=(1, stride, stride), baselines=0.0, perturbations_per_eval=64)
    else:
        raise ValueError(f"method={method!r}: choose one of {METHODS}")
    return values.detach()[0, 0].numpy()


def attribution_overlay(image: np.ndarray, attribution: np.ndarray) -> np.ndarray:
    """The frame in gray, tinted green where pixels push toward the predicted class and red where they push away."""
    gray = plots.display(image)
    scale = np.percentile(np.abs(attribution), 99.5) or 1.0
    strength = np.clip(attribution / scale, -1, 1)
    rgb = np.repeat(gray[..., None], 3, axis=-1) * (1 - 0.7 * np.abs(strength))[..., None]
    rgb[..., 1] += 0.7 * np.clip(strength, 0, 1)
    rgb[..., 0] += 0.7 * np.clip(-strength, 0, 1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def explain(ckpt: str, inputs: list[Path], out: Path, methods: list[str], window: int = 8,
            plane: PlaneChoice = DEFAULT_PLANE) -> Path:
    """Attribution overlays (``<frame>_<method>.png``) and ``predictions.csv`` for the given frames; a frame that
    cannot be read is recorded there with its error (as beadseg-predict records it) and the others go on."""
    _captum()
    network = load_network(ckpt, "classify")
    normalization = Normalization(**(network.hparams.get("normalization") or {}))
    names = network.hparams.get("class_names") or [str(i) for i in range(int(cast(Any, network.net).num_classes))]
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    for path in inputs:
        try:
            raw = read_image(path, plane)
        except (BeadDataError, OSError) as error:
            rows.append({"frame": str(path), "predicted": "", "probability": "", "error": str(error)})
            continue
        image = torch.from_numpy(normalization(raw))[None, None]
        with torch.no_grad():
            probabilities = torch.softmax(network.net(image), dim=1)[0]
        predicted = int(probabilities.argmax())
        rows.append({"frame": str(path), "predicted": names[predicted],
                     "probability": round(float(probabilities[predicted]), 4), "error": ""})
        for method in methods:
            attribution = attribute(network.net, image, predicted, method, window)
            iio.imwrite(out / f"{image_name(path)}_{method}.png", attribution_overlay(raw, attribution))
    write_csv(rows, out / "predictions.csv", ["frame", "predicted", "probability", "error"])
    return out
