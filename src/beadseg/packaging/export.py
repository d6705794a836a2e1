"""Export a checkpoint's network, with its recipe, and check it against the checkpoint: one class per format
(:data:`EXPORTERS`: TorchScript, ONNX, a slim checkpoint, a bioimage.io package; the one list of their names)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import torch

from beadseg.checkpoint import Network, learned_diameter, load_network
from beadseg.packaging.tracing import trace
from beadseg.settings import chosen

INFERENCE_SETTINGS = (
    "net",
    "normalization",
    "threshold",
    "peak_threshold",
    "bead_area",
    "bead_diameter",
    "class_names",
    "centres",
)


def slim_checkpoint(network: Network, ckpt: str, target: Path) -> Path:
    """The network's weights and what inference reads (its description, normalisation, thresholds, bead area and
    diameter, class names), a few MB; no training settings. Convolution kernels are stored in half precision; biases
    and batch-norm statistics (tiny variances) stay in single precision. ``network``: the checkpoint ``ckpt`` as
    :func:`~beadseg.checkpoint.load_network` read it (once)."""
    checkpoint, settings = network.checkpoint, network.hparams
    state = {k: v.half() if v.is_floating_point() and v.dim() > 1 else v for k, v in checkpoint["state_dict"].items()
             if k.startswith("net.")}
    kept = {key: settings[key] for key in INFERENCE_SETTINGS if key in settings}
    if kept.get("centres"):  # whether the model has a centre map, and its width: never a loss to build
        kept["centres"] = {key: kept["centres"][key] for key in ("sigma", "weight") if key in kept["centres"]}
    slim = {
        "state_dict": state,
        "hyper_parameters": kept,
        "pytorch-lightning_version": checkpoint.get("pytorch-lightning_version"),
        "beadseg_split": checkpoint.get("beadseg_split"),
        "beadseg_source": str(ckpt),
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
    }
    torch.save(slim, target)
    return target


class Exporter(ABC):
    """One export format: what :meth:`export` writes into ``out`` for a checkpoint's network, and the largest
    difference from the checkpoint the written model shows."""

    name: ClassVar[str] = ""

    @abstractmethod
    def export(self, network: Network, ckpt: str, out: Path, tile: int, tolerance: float | None) -> tuple[Path, float]:
        """Write the exported model; its path and the largest difference from the checkpoint."""

    @abstractmethod
    def contents(self, path: Path) -> str:
        """What the exported model at ``path`` holds, in a few words for the command's last line."""


EXPORTERS: dict[str, Exporter] = {}


def register(exporter: type[Exporter]) -> type[Exporter]:
    """Add an export format to :data:`EXPORTERS` (a class decorator)."""
    EXPORTERS[exporter.name] = exporter()
    return exporter


def exporter_for(name: object) -> Exporter:
    """The exporter ``format=name`` names, a name of :data:`EXPORTERS` (else refused naming the key).

    Examples
    --------
    >>> exporter_for("onnx").name
    'onnx'
    """
    return chosen(EXPORTERS, name, "format")


class CheckedExporter(Exporter):
    """A format that writes the network with its recipe (``beadseg.json`` beside it) and is checked by running the
    written file on a probe against the checkpoint's own network (within ``tolerance`` of its logits)."""

    tolerance: ClassVar[float] = 1e-4

    @abstractmethod
    def write(self, network: Network, ckpt: str, recipe: dict, example: torch.Tensor, out: Path) -> Path:
        """Write the network (with ``recipe``) into ``out``; the file written."""

    @abstractmethod
    def run(self, path: Path, probe: torch.Tensor) -> torch.Tensor:
        """What the written file predicts for ``probe`` (the check against the checkpoint)."""

    def export(self, network: Network, ckpt: str, out: Path, tile: int, tolerance: float | None) -> tuple[Path, float]:
        net = network.net
        divisor = getattr(net, "divisor", 32)
        if tile % divisor:
            raise ValueError(f"tile={tile} must be a multiple of the model's divisor ({divisor})")
        channels = int(network.hparams["net"].get("out_channels", 1))
        output = ("(N, 2, H, W) logits: channel 0 the bead mask, channel 1 the bead-centre heat-map (one bead per "
                  "peak inside the mask)" if channels == 2 else "(N, 1, H, W) logits of the bead mask")
        recipe = {"net": network.hparams["net"], "normalization": network.hparams.get("normalization"),
                  "threshold": float(network.hparams["threshold"]), "bead_diameter": learned_diameter(network.hparams),
                  "divisor": divisor, "input": "(N, 1, H, W) float32, normalised; H, W multiples of divisor",
                  "output": output, "target": "centres" if channels == 2 else "mask", "checkpoint": str(ckpt)}
        out.mkdir(parents=True, exist_ok=True)
        probe = torch.rand(2, 1, tile, tile)
        with torch.no_grad():
            expected = net(probe)
        (out / "beadseg.json").write_text(json.dumps(recipe, indent=2))
        path = self.write(network, ckpt, recipe, torch.rand(1, 1, tile, tile), out)
        difference = float((self.run(path, probe) - expected).abs().max())
        tolerance = self.tolerance if tolerance is None else tolerance
        if not difference <= tolerance:  # NaN weights give a NaN difference: refused too
            raise RuntimeError(f"the exported model differs from the checkpoint by {difference:.2e} (> {tolerance:g})")
        return path, difference

    def contents(self, path: Path) -> str:
        return f"recipe in {path.parent / 'beadseg.json'}"


@register
class TorchScript(CheckedExporter):
    """A traced TorchScript module with the recipe (``beadseg.json``) inside."""

    name = "torchscript"

    def write(self, network: Network, ckpt: str, recipe: dict, example: torch.Tensor, out: Path) -> Path:
        path = out / "model.torchscript.pt"
        with torch.no_grad():
            traced = trace(network.net, example)
        traced.save(str(path), _extra_files={"beadseg.json": json.dumps(recipe)})
        return path

    def run(self, path: Path, probe: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.jit.load(str(path))(probe)


@register
class Onnx(CheckedExporter):
    """ONNX with dynamic batch, height and width, checked with onnxruntime."""

    name = "onnx"

    def write(self, network: Network, ckpt: str, recipe: dict, example: torch.Tensor, out: Path) -> Path:
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401  (torch's ONNX exporter)
        except ImportError as error:
            raise ImportError(
                "format=onnx needs onnx, onnxruntime and onnxscript: pip install 'beadseg[onnx]'"
            ) from error
        path = out / "model.onnx"
        torch.onnx.export(network.net, (example,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}})
        return path

    def run(self, path: Path, probe: torch.Tensor) -> torch.Tensor:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"image": probe.numpy()})[0])


@register
class SlimCheckpoint(CheckedExporter):
    """A slim half-precision checkpoint that beadseg loads (:func:`slim_checkpoint`)."""

    name, tolerance = "checkpoint", 5e-2

    def write(self, network: Network, ckpt: str, recipe: dict, example: torch.Tensor, out: Path) -> Path:
        return slim_checkpoint(network, ckpt, out / "model.ckpt")

    def run(self, path: Path, probe: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return load_network(path, "segment").net(probe)


@register
class BioimageioPackage(Exporter):
    """A bioimage.io model package (``beadseg.packaging.bioimageio``), tested by bioimageio.core before it is
    written."""

    name = "bioimageio"

    def export(self, network: Network, ckpt: str, out: Path, tile: int, tolerance: float | None) -> tuple[Path, float]:
        from beadseg.packaging.bioimageio import export_bioimageio  # bioimageio.core: an optional, heavy import

        return export_bioimageio(network, out, tile)

    def contents(self, path: Path) -> str:
        return "rdf.yaml, weights, test tensors, cover and README inside; tested by bioimageio.core"


def export(ckpt: str, fmt: str, out: Path, tile: int = 256, tolerance: float | None = None) -> tuple[Path, float]:
    """Write the exported model into ``out``; returns its path and the largest difference from the checkpoint.

    ``fmt``: a name of :data:`EXPORTERS` (``torchscript``, ``onnx``, ``checkpoint``: a slim half-precision
    checkpoint that beadseg loads; ``bioimageio``: a bioimage.io model package, tested by bioimageio.core before
    it is written), checked before the checkpoint is read.

    The exported network takes (N, 1, H, W) normalised images whose H and W are multiples of ``divisor``
    (in ``beadseg.json`` beside it, with the normalisation recipe and threshold): pad before, crop after.
    """
    exporter = exporter_for(fmt)
    return exporter.export(load_network(ckpt, "segment"), ckpt, out, tile, tolerance)
