"""Reading, pairing, normalising and generating bead images; every bad input names its file."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from beadseg.data.folder import FolderSource, pair_folder
from beadseg.data.io import BeadDataError, Normalization, read_image, read_mask
from beadseg.data.synthetic import SyntheticSource, render_beads
from tests.helpers import write_pair


def test_folder_pairs_images_and_masks_by_stem(bead_folder):
    samples = FolderSource(bead_folder).load()
    assert [s.name for s in samples] == ["img0", "img1", "img2"]
    assert all(s.image.dtype == np.uint16 and s.mask.dtype == bool for s in samples)
    assert [s.bead_count for s in samples] == [1, 1, 1]
    assert samples[1].mask.sum() == 49


def test_missing_mask_is_named(bead_folder):
    (bead_folder / "masks" / "img1.tif").unlink()
    with pytest.raises(BeadDataError, match=r"img1\.tif has no mask"):
        pair_folder(bead_folder)


def test_extra_mask_is_named(bead_folder):
    tifffile.imwrite(bead_folder / "masks" / "stray.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(BeadDataError, match=r"mask .*stray\.tif has no image"):
        pair_folder(bead_folder)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(BeadDataError, match=r"nowhere/images does not exist"):
        pair_folder(tmp_path / "nowhere")


def test_unreadable_and_truncated_files_are_named(bead_folder):
    (bead_folder / "images" / "img0.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(BeadDataError, match=r"img0\.tif is not an image"):
        FolderSource(bead_folder).load()
    png = bead_folder / "broken.png"
    iio.imwrite(png, np.zeros((64, 64), np.uint8))
    png.write_bytes(png.read_bytes()[:40])
    with pytest.raises(BeadDataError, match=r"broken\.png"):
        read_image(png)


def test_nan_pixels_are_named(tmp_path):
    image = np.ones((8, 8), np.float32)
    image[2, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", image)
    with pytest.raises(BeadDataError, match=r"nan\.tif holds NaN"):
        read_image(tmp_path / "nan.tif")


def test_size_mismatch_is_named(bead_folder):
    tifffile.imwrite(bead_folder / "masks" / "img2.tif", np.zeros((10, 10), np.uint8))
    with pytest.raises(BeadDataError, match=r"size mismatch: image .*img2\.tif is \(32, 40\), mask .*img2\.tif is \(10, 10\)"):
        FolderSource(bead_folder).load()


def test_non_binary_mask_is_rejected_but_instance_labels_are_accepted(tmp_path):
    beads = np.zeros((32, 32))
    beads[4:10, 4:10] = beads[20:26, 8:14] = beads[12:18, 22:28] = 1
    blurred = (ndi.gaussian_filter(beads, 1.0) * 255).round().astype(np.uint8)  # soft edges around every bead
    iio.imwrite(tmp_path / "blurred.png", blurred)
    with pytest.raises(BeadDataError, match=r"mask .*blurred\.png is neither binary nor instance labels"):
        read_mask(tmp_path / "blurred.png")
    labels = np.zeros((16, 16), np.uint16)
    labels[1:4, 1:4], labels[8:12, 8:12] = 1, 2
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    assert (read_mask(tmp_path / "labels.tif") > 0).sum() == 9 + 16


def test_all_empty_masks_are_rejected(tmp_path):
    for index in range(2):
        write_pair(tmp_path, f"e{index}", np.ones((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(BeadDataError, match=r"every mask in .*masks is empty"):
        FolderSource(tmp_path).load()


def test_rgb_and_16_bit_images_read_as_gray(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 30, 60, 90
    iio.imwrite(tmp_path / "rgb.png", rgb)
    np.testing.assert_allclose(read_image(tmp_path / "rgb.png"), 60.0)
    deep = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    tifffile.imwrite(tmp_path / "deep.tif", deep)
    read = read_image(tmp_path / "deep.tif")
    assert read.dtype == np.uint16
    np.testing.assert_array_equal(read, deep)


def test_normalisations():
    image = np.linspace(0, 60000, 101, dtype=np.float32).reshape(1, -1).astype(np.uint16)
    percentile = Normalization("percentile", low=0, high=100)(image)
    assert percentile.min() == pytest.approx(0) and percentile.max() == pytest.approx(1)
    dataset_max = Normalization("dataset_max").fit([image.max(), (image // 2).max()])
    assert dataset_max.vmax == 60000
    scaled = dataset_max(image)
    assert scaled.max() == pytest.approx(1.0) and scaled.dtype == np.float32
    assert len(np.unique(scaled)) == 101  # 16-bit steps survive
    fixed = Normalization("fixed", vmin=0, vmax=255)(np.array([[0, 255]], np.uint8))
    np.testing.assert_allclose(fixed, [[0, 1]])
    with pytest.raises(ValueError, match="normalization.method"):
        Normalization("zscore")


def test_synthetic_images_are_deterministic_and_masks_exact():
    first, again = SyntheticSource(4, 96, seed=7).render(2), SyntheticSource(10, 96, seed=7).render(2)
    assert first[0] == again[0]
    np.testing.assert_array_equal(first[1], again[1])
    np.testing.assert_array_equal(first[2], again[2])
    image, labels = render_beads(np.random.default_rng(0), 128, 20, "brightfield", bit_depth=8)
    assert image.dtype == np.uint8 and labels.max() == 20
    assert image[labels > 0].mean() < image[labels == 0].mean()  # dark beads on a bright field
    image, labels = render_beads(np.random.default_rng(0), 128, 20, "fluorescence", bit_depth=16)
    assert image.dtype == np.uint16 and image[labels > 0].mean() > image[labels == 0].mean()


def test_synthetic_appearances_show_the_same_disks_as_other_microscopes_do():
    from scipy import ndimage as ndi

    from beadseg.beads.instances import centroids

    for modality in ("inverted", "ringed", "haloed"):
        image, labels = render_beads(np.random.default_rng(5), 192, 15, modality, bit_depth=8, cluster_fraction=0.0)
        image = image.astype(float)
        assert labels.max() == 15
        background = np.median(image[ndi.binary_dilation(labels > 0, iterations=8) == 0])
        centres = tuple(np.round(centroids(labels)).astype(int).T)
        rim = ndi.binary_dilation(labels > 0, iterations=1) & ~ndi.binary_erosion(labels > 0, iterations=1)
        halo = ndi.binary_dilation(labels > 0, iterations=3) & ~(labels > 0)
        if modality == "inverted":  # bright disks on a grey field
            assert image[labels > 0].mean() > background + 10
        elif modality == "ringed":  # a bright centre, a dark ring across the edge
            assert image[centres].mean() > background + 10 and image[rim].mean() < background - 5
        else:  # a dark disk in a bright halo
            assert image[centres].mean() < background - 10 and image[halo].mean() > background + 3
    kinds = {SyntheticSource(30, 64, seed=2, modality="any").render(i)[0].split("_")[1][:2] for i in range(30)}
    assert kinds == {"br", "fl", "in", "ri", "ha"}


def test_synthetic_density_spans_sparse_to_dense():
    counts = [labels.max() for _, _, labels in map(SyntheticSource(24, 512, seed=1).render, range(24))]
    assert min(counts) < 15 and max(counts) > 300


def test_beadseg_synth_writes_a_folder_that_loads(tmp_path, compose_config):
    from hydra.utils import instantiate

    from beadseg.cli.synth import write_synthetic_folder

    cfg = compose_config("synth", ["n=3", "size=64", f"out={tmp_path}"])
    out = write_synthetic_folder(instantiate(cfg.source), Path(cfg.out))
    samples = FolderSource(out).load()
    assert len(samples) == 3 and all(s.image.shape == (64, 64) for s in samples)
    with pytest.raises(FileExistsError, match="never overwrites"):
        write_synthetic_folder(instantiate(cfg.source), out)
