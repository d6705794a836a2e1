"""A bioimage.io model package of a checkpoint (``beadseg-export format=bioimageio``): rdf.yaml in the current
spec, TorchScript and state-dict weights, a test input and its expected output, the normalisation as the spec's
preprocessing and the sigmoid as its postprocessing, a cover image and documentation. ``bioimageio.core`` tests
it before it is written; then deepImageJ, ilastik, QuPath and napari run it without beadseg.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beadseg import plots
from beadseg.checkpoint import Network, learned_diameter
from beadseg.data.io import Normalization
from beadseg.data.synthetic import render_beads
from beadseg.models.registry import importable
from beadseg.packaging.tracing import trace

BEADSEG_ONLY = ("the object steps stay in beadseg: hole filling, the split of touching beads (distance-transform "
                "watershed, or the centre heat-map's peaks for a two-channel model), the size and circularity filters, "
                "the object table and the counts")


def _documentation(network: Network, channels: int, path: Path) -> Path:
    outputs = ("channel 0: bead probability; channel 1: bead-centre heat-map (one bead per peak inside the mask)"
               if channels == 2 else "channel 0: bead probability")
    normalization = network.hparams.get("normalization") or {}
    path.write_text(
        "\n".join(
            [
                "# beadseg bead segmentation model",
                "",
                "Finds microbeads (dark or fluorescent, about 5-15 px across) in 2-D microscope images.",
                "",
                "## Inputs and outputs",
                "",
                "- input `raw`: one gray image (batch, channel, y, x), raw intensities; the preprocessing "
                "normalises it "
                f"({json.dumps(normalization)}).",
                f"- output `probability`: {outputs}; threshold {network.hparams.get('threshold', 0.5)} gives the "
                "bead mask.",
                "",
                "## What stays in beadseg",
                "",
                f"This package gives the per-pixel maps; {BEADSEG_ONLY}. Run `beadseg-predict ckpt=...` (or the napari "
                "widget) for bead instances and counts.",
                "",
                "## Training",
                "",
                f"Trained with beadseg; network `{network.hparams['net']['architecture']}`.",
                "",
            ]
        )
    )
    return path


def _cover(image: np.ndarray, probability: np.ndarray, path: Path) -> Path:
    """A 2:1 cover: the test image beside the bead probability."""
    figure = plots.cover_figure(image, probability)
    return plots.save(figure, path, dpi=100)


def _normalization_steps(normalization: dict) -> list:
    from bioimageio.spec.model.v0_5 import (
        AxisId,
        EnsureDtypeDescr,
        EnsureDtypeKwargs,
        ScaleLinearDescr,
        ScaleLinearKwargs,
        ScaleRangeDescr,
        ScaleRangeKwargs,
    )

    steps: list[Any] = [EnsureDtypeDescr(kwargs=EnsureDtypeKwargs(dtype="float32"))]
    if normalization.get("method", "percentile") == "percentile":
        steps.append(ScaleRangeDescr(kwargs=ScaleRangeKwargs(axes=[AxisId("y"), AxisId("x")],
                                                             min_percentile=normalization.get("low", 1.0),
                                                             max_percentile=normalization.get("high", 99.8))))
    else:
        low, high = float(normalization.get("vmin") or 0.0), float(normalization["vmax"])
        steps.append(ScaleLinearDescr(kwargs=ScaleLinearKwargs(gain=1 / max(high - low, 1e-6),
                                                               offset=-low / max(high - low, 1e-6))))
    return steps


def export_bioimageio(network: Network, out: Path, tile: int = 256, test_model: bool = True) -> tuple[Path, float]:
    """Write ``out/<name>.zip`` (and the files it holds beside it); returns its path and the largest difference
    between the TorchScript weights and the checkpoint on the test input. ``test_model`` runs bioimageio.core's
    own test of the package (both weight formats) and refuses a package that fails it."""
    try:
        from bioimageio.core import test_model as run_test
        from bioimageio.spec import save_bioimageio_package
        from bioimageio.spec.model.v0_5 import (
            ArchitectureFromLibraryDescr,
            Author,
            AxisId,
            BatchAxis,
            ChannelAxis,
            CiteEntry,
            FileDescr,
            Identifier,
            InputTensorDescr,
            IntervalOrRatioDataDescr,
            LicenseId,
            ModelDescr,
            OutputTensorDescr,
            ParameterizedSize,
            PytorchStateDictWeightsDescr,
            SigmoidDescr,
            SizeReference,
            SpaceInputAxis,
            SpaceOutputAxis,
            TensorId,
            TorchscriptWeightsDescr,
            Version,
            WeightsDescr,
        )
    except ImportError as error:
        raise ImportError("format=bioimageio needs bioimageio.core: pip install 'beadseg[bioimageio]'") from error

    net = network.net.eval()
    module, callable_name, config = importable(network.hparams["net"])
    channels = int(config.get("out_channels", 1))
    divisor = getattr(net, "divisor", 32)
    out.mkdir(parents=True, exist_ok=True)

    image, _ = render_beads(np.random.default_rng(0), tile, 60, "brightfield", bit_depth=8)
    raw = image.astype(np.float32)[None, None]
    normalization = network.hparams.get("normalization") or {}
    normalized = torch.from_numpy(Normalization(**normalization)(image)[None, None])  # beadseg's own recipe
    with torch.no_grad():
        expected = torch.sigmoid(net(normalized)).numpy()
        traced = trace(net, normalized)
        difference = float((torch.sigmoid(traced(normalized)) - torch.from_numpy(expected)).abs().max())
    np.save(out / "test_input.npy", raw)
    np.save(out / "test_output.npy", expected)
    traced.save(str(out / "weights.torchscript.pt"))
    torch.save(net.state_dict(), out / "weights.pt")

    raw_id = TensorId("raw")
    space = [SpaceInputAxis(id=AxisId(a), size=ParameterizedSize(min=divisor * 2, step=divisor)) for a in "yx"]
    names = ["bead_probability", "bead_centres"][:channels] if channels <= 2 else [f"map{i}" for i in range(channels)]
    inputs = InputTensorDescr(
        id=raw_id, axes=[BatchAxis(), ChannelAxis(channel_names=[Identifier("gray")]), *space],
        test_tensor=FileDescr(source=out / "test_input.npy"), data=IntervalOrRatioDataDescr(type="float32"),
        preprocessing=_normalization_steps(normalization))
    outputs = OutputTensorDescr(
        id=TensorId("probability"),
        axes=[BatchAxis(), ChannelAxis(channel_names=[Identifier(n) for n in names]),
              *(SpaceOutputAxis(id=AxisId(a), size=SizeReference(tensor_id=raw_id, axis_id=AxisId(a))) for a in "yx")],
        test_tensor=FileDescr(source=out / "test_output.npy"), postprocessing=[SigmoidDescr()])
    torch_version = Version(torch.__version__.split("+")[0])
    weights = WeightsDescr(
        pytorch_state_dict=PytorchStateDictWeightsDescr(
            source=out / "weights.pt", pytorch_version=torch_version,
            architecture=ArchitectureFromLibraryDescr(import_from=module, callable=Identifier(callable_name),
                                                      kwargs=config)),
        torchscript=TorchscriptWeightsDescr(source=out / "weights.torchscript.pt", pytorch_version=torch_version,
                                            parent="pytorch_state_dict"))
    spec_config: Any = {
        "beadseg": {
            "net": network.hparams["net"],
            "threshold": float(network.hparams.get("threshold", 0.5)),
            "divisor": divisor,
            "target": "centres" if channels == 2 else "mask",
            "bead_diameter_px": learned_diameter(network.hparams),  # resize frames to it first
            "post_processing": BEADSEG_ONLY,
        }
    }  # a plain dict: the spec validates it into its Config
    description = ModelDescr(
        name="beadseg microbead segmentation",
        description="Bead probability (and bead-centre heat-map) of 2-D bright-field or fluorescence microbead images.",
        authors=[Author(name="beadseg developers")],
        cite=[CiteEntry(text="Ronneberger et al., U-Net (2015)", doi="10.1007/978-3-319-24574-4_28")],  # type: ignore[arg-type]  # the spec validates the string
        license=LicenseId("MIT"), tags=["microbeads", "segmentation", "counting", "2d", "pytorch", "unet"],
        documentation=FileDescr(source=_documentation(network, channels, out / "README.md")),
        covers=[FileDescr(source=_cover(image, expected[0, 0], out / "cover.png"))],
        inputs=[inputs], outputs=[outputs], weights=weights,
        config=spec_config)
    if test_model:
        for weight_format in ("torchscript", "pytorch_state_dict"):
            summary = run_test(description, weight_format=weight_format)
            if summary.status != "passed":
                failed = [d for d in summary.details if d.status == "failed"]
                raise RuntimeError(f"bioimageio.core's test of the package failed ({weight_format}): "
                                   + "; ".join(f"{d.name}: {[e.msg for e in d.errors][:2]}" for d in failed[:3]))
    package = save_bioimageio_package(description, output_path=out / "beadseg_model.zip")
    return Path(package), difference
