"""Beads, not specks: planted debris is rejected and counted, faint real beads are kept, in both polarities."""


import imageio.v3 as iio
import numpy as np
import pytest
from skimage.draw import disk

from beadseg.beads.measure import contrast_snr, image_noise, reference_area
from beadseg.beads.postprocess import PostProcess
from tests.helpers import table

BEADS = [(20 + 40 * (i // 5), 20 + 40 * (i % 5)) for i in range(15)]  # a 3 x 5 grid, 40 px apart
SPECKS = [(40 + 40 * (i // 4), 40 + 40 * (i % 4)) for i in range(8)]  # between the beads


def planted(polarity: str, bead_contrast: float = 60.0, speck_contrast: float = 40.0, noise: float = 4.0, seed: int = 0):
    """A 140x220 frame: 15 beads of radius 4 (49 px) and 8 specks of radius 1.5 (9 px) on a noisy background,
    and a probability map that calls all of them beads (a detector that finds specks too)."""
    rng = np.random.default_rng(seed)
    sign = -1.0 if polarity == "dark" else 1.0
    image = np.full((140, 220), 120.0)
    probability = np.zeros(image.shape, np.float32)
    for centre in BEADS:
        image[disk(centre, 4)] += sign * bead_contrast
        probability[disk(centre, 4)] = 0.9
    for centre in SPECKS:
        image[disk(centre, 1.6)] += sign * speck_contrast
        probability[disk(centre, 1.6)] = 0.9
    return image + rng.normal(0, noise, image.shape), probability


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_planted_specks_are_debris_and_beads_stay(polarity):
    image, probability = planted(polarity)
    found = PostProcess().instances(probability, image)
    assert len(found.objects) == len(BEADS)  # every bead, and nothing else
    assert len(found.debris) == len(SPECKS) and {row["reason"] for row in found.debris} == {"small"}
    assert found.labels.max() == len(BEADS) and all(found.labels[c] > 0 for c in BEADS)
    assert not any(found.labels[c] for c in SPECKS)  # the specks' pixels are background
    assert min(row["contrast_snr"] for row in found.objects) > 50
    # with the rule off, the specks count as beads: the rule is what removes them
    assert len(PostProcess(debris_area_fraction=None).instances(probability, image).objects) == len(BEADS) + len(SPECKS)


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_a_faint_real_bead_is_kept_and_a_blob_of_noise_is_not(polarity):
    image, probability = planted(polarity, bead_contrast=6.0, speck_contrast=40.0, noise=4.0, seed=1)
    blob = (110, 200)
    probability[disk(blob, 4)] = 0.9  # a bead-sized object where the image holds only noise
    found = PostProcess().instances(probability, image)
    assert len(found.objects) == len(BEADS)  # 1.5 noise sigmas per pixel over 49 pixels stands out (~10)
    faint = [row for row in found.debris if row["reason"] == "faint"]
    assert len(faint) == 1 and abs(faint[0]["centroid_y"] - blob[0]) < 1 and abs(faint[0]["centroid_x"] - blob[1]) < 1
    assert faint[0]["contrast_snr"] < 3 and min(row["contrast_snr"] for row in found.objects) > 6


def test_contrast_snr_and_noise_on_known_values():
    rng = np.random.default_rng(3)
    image = rng.normal(100.0, 2.0, (200, 200))
    assert image_noise(image) == pytest.approx(2.0, rel=0.05)
    labels = np.zeros(image.shape, np.int32)
    labels[disk((50, 50), 5)] = 1
    image[labels == 1] -= 10.0
    snr = contrast_snr(labels, image, 2.0)
    assert snr[1] == pytest.approx(10.0 * np.sqrt((labels == 1).sum()) / 2.0, rel=0.1)


def test_reference_area_ignores_specks_and_an_object_at_the_frame_edge_is_no_speck():
    assert reference_area(np.array([50, 52, 48, 55, 10, 9, 12])) == pytest.approx(51, abs=1)
    probability = np.zeros((60, 60), np.float32)
    image = np.full(probability.shape, 100.0) + np.random.default_rng(0).normal(0, 1, probability.shape)
    for centre in ((15, 15), (15, 40), (40, 15), (40, 40)):
        probability[disk(centre, 4)] = 0.9
        image[disk(centre, 4)] -= 40
    probability[0:3, 25:29] = 0.9  # a bead cut by the top edge: 12 px
    image[0:3, 25:29] -= 40
    found = PostProcess().instances(probability, image)
    assert len(found.objects) == 5 and not found.debris


@pytest.mark.slow
def test_predict_counts_debris_and_lists_it_on_request(tmp_path, predict_here):
    folder = tmp_path / "frames"
    folder.mkdir()
    image, _ = planted("dark")
    iio.imwrite(folder / "specks.png", np.clip(image, 0, 255).astype(np.uint8))
    out = tmp_path / "out"
    predict_here(f"input={folder}", f"output={out}", "method=classical", "save_debris=true")
    counts = table(out / "counts.csv")[0]
    debris = list(table(out / "debris.csv"))
    assert int(counts["count"]) == len(BEADS) and int(counts["debris"]) == len(debris) >= len(SPECKS)
    for y, x in SPECKS:  # every speck is listed as debris, at its place
        assert any(abs(float(row["centroid_y"]) - y) < 2 and abs(float(row["centroid_x"]) - x) < 2 for row in debris)
    objects = list(table(out / "objects.csv"))
    assert len(objects) == len(BEADS) and min(float(row["contrast_snr"]) for row in objects) > 20
