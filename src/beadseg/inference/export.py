"""Export a checkpoint's network to TorchScript or ONNX, with its recipe, and check it against the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from beadseg.training.module import BeadSegModule


def export(ckpt: str, fmt: str, out: Path, tile: int = 256, tolerance: float = 1e-4) -> tuple[Path, float]:
    """Write the exported model into ``out``; returns its path and the largest difference from the checkpoint.

    The exported network takes (N, 1, H, W) normalised images whose H and W are multiples of ``divisor``
    (in ``beadseg.json`` beside it, with the normalisation recipe and threshold): pad before, crop after.
    """
    module = BeadSegModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    net = module.net
    divisor = getattr(net, "divisor", 32)
    if tile % divisor:
        raise ValueError(f"tile={tile} must be a multiple of the model's divisor ({divisor})")
    recipe = {"normalization": module.hparams.get("normalization"), "threshold": float(module.hparams.threshold),
              "divisor": divisor, "input": "(N, 1, H, W) float32, normalised; H, W multiples of divisor",
              "output": "(N, 1, H, W) logits", "checkpoint": str(ckpt)}
    out.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 1, tile, tile)
    probe = torch.rand(2, 1, tile, tile)
    with torch.no_grad():
        expected = net(probe)
    (out / "beadseg.json").write_text(json.dumps(recipe, indent=2))
    if fmt == "torchscript":
        path = out / "model.torchscript.pt"
        with torch.no_grad():
            traced = torch.jit.trace(net, example)
        traced.save(str(path), _extra_files={"beadseg.json": json.dumps(recipe)})
        with torch.no_grad():
            got = torch.jit.load(str(path))(probe)
    elif fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime
        except ImportError as error:
            raise ImportError("format=onnx needs the onnx and onnxruntime packages: pip install onnx onnxruntime") from error
        path = out / "model.onnx"
        torch.onnx.export(net, example, str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}})
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"image": probe.numpy()})[0])
    else:
        raise ValueError(f"format={fmt!r}: choose torchscript or onnx")
    difference = float((got - expected).abs().max())
    if difference > tolerance:
        raise RuntimeError(f"the exported model differs from the checkpoint by {difference:.2e} (> {tolerance:g})")
    return path, difference
