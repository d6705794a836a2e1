"""Composite frames from a folder's own beads: exact truth for touching beads (issue 26)."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.measure import label

from beadseg.beads.classical import detect_beads
from beadseg.beads.instances import centroids
from beadseg.beads.measure import contrast_snr, image_noise
from beadseg.data.composite import BeadLibrary, CompositeSource, composite, place_beads
from beadseg.data.synthetic import render_beads
from tests.helpers import write_pair


@pytest.fixture
def sparse_folder(tmp_path: Path) -> Path:
    """Four sparse bright-field frames (40 beads of radius 3.5-4 px) with binary masks and unlabelled specks."""
    root = tmp_path / "sparse"
    for index in range(4):
        image, labels = render_beads(np.random.default_rng(index), 192, 40, "brightfield", bit_depth=8, cluster_fraction=0.0, n_debris=6)
        write_pair(root, f"2560x_cap{index // 2}_grid_r0_c{index % 2}", image, ((labels > 0) * 255).astype(np.uint8))
    return root


def inner(points: np.ndarray, shape: tuple[int, ...], margin: int = 10) -> np.ndarray:
    """The points at least ``margin`` px inside a frame of ``shape``."""
    return points[np.all((points >= margin) & (points < np.array(shape[:2]) - margin), axis=1)]


def inner_detections(image: np.ndarray) -> int:
    """Objects the classical detector finds away from the border (its background removal finds a few false ones
    on the border of noise-only frames too)."""
    return len(inner(detect_beads(image).centroids, image.shape))


def test_beads_are_cut_and_the_frames_emptied_of_every_bead_labelled_or_not(sparse_folder):
    """Every bead leaves the emptied frames, one the lab left unlabelled too; the specks (far smaller than beads)
    stay as background, as the frame shows them."""
    name = "2560x_cap0_grid_r0_c0"
    mask = label(tifffile.imread(sparse_folder / "masks" / f"{name}.tif") > 0)
    positions = inner(centroids(mask), mask.shape, 20)
    unlabelled_bead = mask == mask[tuple(np.round(positions[0]).astype(int))]  # the lab did not label it: its
    mask[unlabelled_bead] = 0                                                      # mask erased, the bead kept
    write_pair(sparse_folder, name, tifffile.imread(sparse_folder / "images" / f"{name}.tif"), ((mask > 0) * 255).astype(np.uint8))
    source = CompositeSource(sparse_folder, group_by="^(.*)_grid_")
    library = source.library
    assert set(library.groups) == {"2560x_cap0", "2560x_cap1"}
    assert all(len(beads) >= 10 for beads in library.beads.values())
    assert all(4 <= diameter <= 10 for diameter in library.diameters.values())
    specks_left = 0
    for index, (sample, background) in enumerate(zip(source.folder.load(), library.backgrounds)):
        beads = label(sample.mask)
        if index == 0:
            beads = np.where(unlabelled_bead, beads.max() + 1, beads)
        noise = image_noise(sample.image)
        standing = contrast_snr(beads, sample.image, noise)[1:]
        emptied = contrast_snr(beads, background, noise)[1:]
        assert standing.min() > 10  # the beads stand out of the frame, the unlabelled too
        assert emptied.max() < 4  # ... no bead, labelled or not, stands out of the emptied frame
        specks_left += inner_detections(background)
        assert abs(np.median(background) - np.median(sample.image)) < 0.03 * np.median(sample.image)  # its level kept
    assert specks_left > 0  # the specks stay: background, as the frame shows them


def test_a_sliver_of_a_bead_cut_by_the_frame_edge_is_emptied_too():
    """A bead whose centre lies 2-3 px beyond the frame's top edge (in the neighbouring tile; the lab does not
    label it) shows a sliver of a few pixels, too few to hold a whole bead's contrast: it leaves the emptied frame
    all the same (the rule for blobs inside the frame, a whole bead's contrast over their area, keeps all 15)."""
    image, labels = render_beads(np.random.default_rng(0), 192, 40, "brightfield", bit_depth=8, cluster_fraction=0.0)
    beads = label(labels > 0)
    slivers = []
    for number, (y, x) in enumerate(centroids(beads), start=1):
        if not (30 < y < 130 and 20 < x < 170):
            continue
        top = int(round(y + 2.5))  # the bead's centre 2-3 px above the crop's first row
        frame, frame_beads = image[top : top + 64], beads[top : top + 64]
        sliver = (frame_beads == number).astype(np.int32)
        library = BeadLibrary()
        library.add_frame(frame, (frame_beads > 0) & (sliver == 0), "capture", np.random.default_rng(1))
        noise = image_noise(frame)
        slivers.append((sliver.sum(), contrast_snr(sliver, frame, noise)[1],
                        contrast_snr(sliver, library.backgrounds[0], noise)[1]))
    area, standing, left = np.array(slivers).T
    assert len(slivers) >= 10 and area.max() < 30  # slivers: at most two thirds of a bead (45 px) in view
    assert standing.min() > 8  # each stands out of its frame ...
    assert left.max() < 5  # ... and none out of the emptied frame


def test_a_doublet_sits_at_contact_distance_with_a_label_for_each_bead(sparse_folder):
    library = CompositeSource(sparse_folder).library
    group = library.groups[0]
    diameter = library.diameters[group]
    background = library.backgrounds[0]
    rng = np.random.default_rng(0)
    doublets = [g for g in place_beads(rng, background.shape, 200, diameter, 1.0) if len(g) == 2]
    assert doublets, "touching_fraction=1 places groups"
    for pair in doublets:
        assert abs(np.hypot(*(pair[0] - pair[1])) / diameter - 1) <= 0.031
    centres = np.array([[60.0, 60.0], [60.0, 60.0 + diameter]])
    image, labels = composite(background, library.beads[group], centres, rng, library.dtype)
    assert labels.max() == 2 and image.dtype == np.uint8
    found = centroids(labels)
    assert np.allclose(found, centres, atol=0.75)  # whole-pixel placement of each mask's centroid
    near_each_other = labels[55:66, 55:70]
    assert {1, 2} <= set(np.unique(near_each_other))
    assert image[labels > 0].mean() < 0.9 * np.median(background)  # dark beads multiplied onto the background


def test_groups_of_other_beads_keep_apart_and_dense_frames_fill():
    rng = np.random.default_rng(3)
    groups = place_beads(rng, (512, 512), 700, 7.0, 0.45)
    beads = np.concatenate(groups)
    assert 650 <= len(beads) <= 700
    owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    distance = np.hypot(*(beads[:, None] - beads[None]).transpose(2, 0, 1))
    other = owner[:, None] != owner[None]
    assert distance[other].min() >= 1.25 * 7.0
    touching = sum(len(g) for g in groups if len(g) > 1) / len(beads)
    assert 0.35 <= touching <= 0.55
    assert {len(g) for g in groups} >= {1, 2, 3, 4}


def test_the_same_seed_gives_the_same_frame(sparse_folder):
    first = CompositeSource(sparse_folder, n_images=3, seed=5, min_beads=300, max_beads=600)
    again = CompositeSource(sparse_folder, n_images=3, seed=5, min_beads=300, max_beads=600)
    name, image, labels = first.render(2)
    name_again, image_again, labels_again = again.render(2)
    assert name == name_again == "composite_0002"
    assert np.array_equal(image, image_again) and np.array_equal(labels, labels_again)
    other = CompositeSource(sparse_folder, n_images=3, seed=6, min_beads=300, max_beads=600).render(2)
    assert not np.array_equal(other[1], image)
    per_area = (192 / 512) ** 2
    assert 0.8 * 300 * per_area <= labels.max() <= 600 * per_area
    rows = first.entries()
    assert [row["bead_count"] for row in rows][2] == labels.max()


def test_held_out_captures_give_no_beads(sparse_folder):
    source = CompositeSource(sparse_folder, group_by="^(.*)_grid_", exclude_groups=["2560x_cap1"])
    assert source.library.groups == ["2560x_cap0"] and len(source.library.backgrounds) == 2
    with pytest.raises(ValueError, match="no isolated bead"):
        _ = CompositeSource(sparse_folder, frames="^nothing").library


def test_composites_train_alone_and_never_draw_on_the_validation_or_test_captures(tmp_path):
    """Composites cut from the folder are training frames only; validation and test judge the folder's images, and
    the captures they hold give the composites no bead or background (they would leak into training)."""
    from beadseg.data.folder import FolderSource
    from beadseg.data.sources import ConcatSource
    from beadseg.datasets.datamodule import BeadDataModule

    root = tmp_path / "three_captures"
    for index in range(6):
        image, labels = render_beads(np.random.default_rng(index), 128, 20, "brightfield", bit_depth=8, cluster_fraction=0.0)
        write_pair(root, f"2560x_cap{index // 2}_grid_r0_c{index % 2}", image, ((labels > 0) * 255).astype(np.uint8))
    composites = CompositeSource(root, n_images=5, min_beads=300, max_beads=600, group_by="^(.*)_grid_")
    assert composites.library.groups == ["2560x_cap0", "2560x_cap1", "2560x_cap2"]  # before the split: every capture
    data = BeadDataModule(ConcatSource([FolderSource(root)], train_only=[composites]), patch_size=64, val_fraction=0.3,
                          group_by="^(.*)_grid_", test_groups=["2560x_cap2"], num_workers=0, output_dir=str(tmp_path))
    data.setup()
    split = {row["name"]: (row["group"], row["split"]) for row in data.split_table}
    held = {group for group, which in split.values() if which in ("val", "test")}
    assert {which for group, which in split.values()} == {"train", "val", "test"} and len(held) == 2
    assert all(not name.startswith("composite") for name, (_, which) in split.items() if which != "train")
    assert sum(name.startswith("composite") for name in split) == 5
    assert composites.exclude_groups == held
    training_captures = [group for name, (group, which) in split.items()
                         if which == "train" and not name.startswith("composite")]
    assert composites.library.groups == sorted(set(training_captures)) and len(training_captures) == 2
    assert len(composites.library.backgrounds) == 2  # the one training capture's two tiles
    assert len(data.datasets["val"]) + len(data.datasets["test"]) == 4


def test_real_beads_make_dense_frames(real_data):
    source = CompositeSource(real_data, n_images=1, min_beads=600, max_beads=601, group_by="^(.*)_grid_",
                             frames="^(2560x|5120x)")
    name, image, labels = source.render(0)
    assert isinstance(source.library, BeadLibrary) and labels.max() >= 500
    assert image.dtype == np.uint8 and image.shape == (512, 512)
