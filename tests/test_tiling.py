"""Tiled inference reconstructs whole-image inference exactly, at any size, with bounded buffers."""

import numpy as np
import pytest
import torch

from beadseg.inference.predictor import DIHEDRAL, _apply, _invert
from beadseg.inference.tiling import blend_window, predict_tiled, tile_plan


class Pointwise(torch.nn.Module):
    """A fully convolutional model whose output at a pixel depends on that pixel only."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        torch.nn.init.constant_(self.conv.weight, 3.0)
        torch.nn.init.constant_(self.conv.bias, -1.0)

    def forward(self, x):
        return torch.sigmoid(self.conv(x)), None


def whole_image(image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return Pointwise()(torch.from_numpy(image)[None, None])[0][0, 0].numpy()


@pytest.mark.parametrize("shape", [(300, 1), (1, 300), (257, 513), (37, 1000), (64, 64), (700, 33), (5, 5)])
@pytest.mark.parametrize("blend", ["gaussian", "cosine"])
def test_stitched_tiles_equal_whole_image_inference(shape, blend):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    tiled, uncertainty = predict_tiled(Pointwise(), image, lambda crop: crop.astype(np.float32), tile=64,
                                       overlap=20, batch_size=3, blend=blend, multiple=16)
    assert uncertainty is None
    np.testing.assert_allclose(tiled, whole_image(image), atol=1e-5, rtol=0)


def test_outputs_can_be_memory_maps(tmp_path):
    image = np.random.default_rng(1).random((300, 200), dtype=np.float32)
    out = np.lib.format.open_memmap(tmp_path / "p.npy", "w+", np.float32, image.shape)
    rows = []
    predict_tiled(Pointwise(), image, lambda c: c, tile=64, overlap=16, probability_out=out, on_tile_row=rows.append)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), whole_image(image), atol=1e-5)
    assert sum(rows) == len(tile_plan(300, 64, 16)[1]) * len(tile_plan(200, 64, 16)[1])


def test_uncertainty_is_blended_like_the_probability():
    def model(x):
        return torch.full_like(x, 0.5), torch.full_like(x, 0.2)

    probability, uncertainty = predict_tiled(model, np.zeros((130, 90), np.float32), lambda c: c, tile=64)
    np.testing.assert_allclose(probability, 0.5, atol=1e-6)
    np.testing.assert_allclose(uncertainty, 0.2, atol=1e-6)


@pytest.mark.parametrize("length", [1, 63, 64, 65, 200, 1001, 2160, 3840])
def test_tiles_cover_every_pixel_with_the_overlap_asked_for(length):
    size, starts = tile_plan(length, 512 if length > 1000 else 64, 16, multiple=16)
    covered = np.zeros(length, int)
    for s in starts:
        covered[s : s + size] += 1
    assert covered.min() >= 1 and starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= size - 16 for a, b in zip(starts, starts[1:]))  # neighbours share >= 16 px
    assert size % 16 == 0 or size == length
    assert len(starts) * size < length + len(starts) * (16 + 16)  # little is computed twice


def test_blend_weights_stay_positive():
    window = blend_window(64, 48, "gaussian")
    assert window.min() > 0 and window[32, 24] == window.max()
    with pytest.raises(ValueError, match="blend="):
        blend_window(4, 4, "triangle")


def test_every_tta_transform_is_undone():
    x = torch.arange(2 * 1 * 5 * 7, dtype=torch.float32).reshape(2, 1, 5, 7)
    outputs = {tuple(_apply(x, k, f).shape) for k, f in DIHEDRAL}
    assert outputs == {(2, 1, 5, 7), (2, 1, 7, 5)}
    for turns, flip in DIHEDRAL:
        assert torch.equal(_invert(_apply(x, turns, flip), turns, flip), x)


def test_several_output_maps_are_stitched_each_exactly(tmp_path):
    """A two-map model (mask and centre heat-map): both maps come back whole, also into a memory map."""

    def two_maps(tiles):
        probability, _ = Pointwise()(tiles)
        return torch.cat([probability, 1 - probability], dim=1), None

    image = np.random.default_rng(1).random((150, 97), dtype=np.float32)
    maps, _ = predict_tiled(two_maps, image, lambda c: c, tile=64, overlap=20, batch_size=2, channels=2)
    assert maps.shape == (2, 150, 97)
    np.testing.assert_allclose(maps[0], whole_image(image), atol=1e-5, rtol=0)
    np.testing.assert_allclose(maps[1], 1 - whole_image(image), atol=1e-5, rtol=0)
    out = np.lib.format.open_memmap(tmp_path / "maps.npy", "w+", np.float32, (2, 150, 97))
    predict_tiled(two_maps, image, lambda c: c, tile=64, overlap=20, probability_out=out, channels=2)
    np.testing.assert_allclose(out, maps, atol=1e-6)
    with pytest.raises(ValueError, match="gives 2 output maps, 1 expected"):
        predict_tiled(two_maps, image, lambda c: c, tile=64)
