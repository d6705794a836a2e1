"""Tiled inference reconstructs whole-image inference exactly, at any size, with bounded buffers."""

import numpy as np
import pytest
import torch

from beadseg.inference.predictor import DIHEDRAL, _apply, _invert
from beadseg.inference.tiling import blend_window, predict_tiled, tile_starts


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
                                       overlap=0.3, batch_size=3, blend=blend)
    assert uncertainty is None
    np.testing.assert_allclose(tiled, whole_image(image), atol=1e-5, rtol=0)


def test_outputs_can_be_memory_maps(tmp_path):
    image = np.random.default_rng(1).random((300, 200), dtype=np.float32)
    out = np.lib.format.open_memmap(tmp_path / "p.npy", "w+", np.float32, image.shape)
    rows = []
    predict_tiled(Pointwise(), image, lambda c: c, tile=64, overlap=0.25, probability_out=out, on_tile_row=rows.append)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), whole_image(image), atol=1e-5)
    assert sum(rows) == len(tile_starts(300, 64, 0.25)) * len(tile_starts(200, 64, 0.25))


def test_uncertainty_is_blended_like_the_probability():
    def model(x):
        return torch.full_like(x, 0.5), torch.full_like(x, 0.2)

    probability, uncertainty = predict_tiled(model, np.zeros((130, 90), np.float32), lambda c: c, tile=64)
    np.testing.assert_allclose(probability, 0.5, atol=1e-6)
    np.testing.assert_allclose(uncertainty, 0.2, atol=1e-6)


def test_tiles_cover_every_pixel_and_weights_stay_positive():
    for length in (1, 63, 64, 65, 200, 1001):
        starts = tile_starts(length, min(64, length), 0.25)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + 64] = True
        assert covered.all() and starts[-1] + min(64, length) == length
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
