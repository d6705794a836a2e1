"""Training from clicked points: points files read as beadseg and napari write them, refused by file and line, disks
of the bead size with touching beads kept apart, and a points-only folder that trains and then counts its beads."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import ndimage as ndi

from beadseg.data.io import BeadDataError
from beadseg.data.points import PointsSource, disks_at, read_points, write_points
from tests.helpers import table
from tests.test_bead_size import scene


def centres_of(labels: np.ndarray) -> np.ndarray:
    return np.array(ndi.center_of_mass(labels > 0, labels, range(1, labels.max() + 1)))


def points_folder(root: Path, frames: int = 3, diameter: float = 9.0) -> tuple[Path, list[int]]:
    """Frames of beads of ``diameter`` px with their true centres as points, and no masks."""
    counts = []
    for index in range(frames):
        image, truth = scene(diameter, count=20, size=128, seed=index)
        dark = ndi.label(image < 100)[0]
        assert dark.max() == truth  # the drawn beads, found by their darkness: their centres are the clicks
        (root / "images").mkdir(parents=True, exist_ok=True)
        iio.imwrite(root / "images" / f"f{index}.png", image)
        write_points(root / "points" / f"f{index}.csv", centres_of(dark))
        counts.append(int(dark.max()))
    return root, counts


def test_points_as_napari_saves_them_read_as_they_are(tmp_path):
    from napari.layers import Points
    from napari_builtins.io import napari_write_points  # napari's own writer of a points layer as CSV

    data = np.array([[3.0, 4.5], [10.25, 2.0], [0.0, 15.0]])
    layer = Points(data)
    napari_write_points(str(tmp_path / "clicks.csv"), layer.data, {"features": layer.features})
    assert "axis-0" in (tmp_path / "clicks.csv").read_text().splitlines()[0]
    np.testing.assert_allclose(read_points(tmp_path / "clicks.csv", (16, 16)), data)
    write_points(tmp_path / "own.csv", data)
    np.testing.assert_allclose(read_points(tmp_path / "own.csv"), data)
    (tmp_path / "none.csv").write_text("y,x\n")  # a frame without beads: a negative example
    assert read_points(tmp_path / "none.csv").shape == (0, 2)


@pytest.mark.parametrize("text, message", [("row,col\n1,2\n", r"columns \['row', 'col'\]: it needs y,x"),
                                           ("index,axis-0,axis-1,axis-2\n0,1,2,3\n", r"of a 2-D points layer"),
                                           ("y,x\n1,2\n3,nan\n", r"line 3: \[3.0, nan\] is not a position"),
                                           ("y,x\n1,\n", r"line 2: \('y', 'x'\) must be numbers"),
                                           ("y,x\n1,2\n16,3\n", r"line 3: \(y, x\) = \(16.0, 3.0\) lies outside")])
def test_bad_points_files_are_refused_by_file_and_line(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(BeadDataError, match="bad.csv.*" + message):
        read_points(tmp_path / "bad.csv", (16, 16))


def test_disks_keep_touching_beads_apart_and_centred_on_their_points():
    points = np.array([[20.0, 20.0], [20.0, 29.0], [40.5, 12.25], [60.0, 60.0], [60.0, 60.2]])  # 2 touch, 2 coincide
    labels = disks_at(points, (64, 64), 10.0)
    assert labels.max() == 4  # the two on one pixel are one bead
    areas = np.bincount(labels.ravel())[1:]
    assert areas[2] == pytest.approx(np.pi * 25, rel=0.1) and areas[0] < areas[2]  # the touching pair shares the neck
    found = centres_of(labels)
    np.testing.assert_allclose(found[:3, 0], [20, 20, 40.5], atol=0.6)
    assert found[0, 1] < 20 < 29 < found[1, 1]  # each holds its own centre's side of the neck


def test_a_points_folder_pairs_its_files_and_names_what_is_missing(tmp_path):
    root, counts = points_folder(tmp_path / "data")
    source = PointsSource(root, bead_diameter=9.0)
    rows = source.entries()
    assert [row["bead_count"] for row in rows] == counts and min(counts) >= 15
    sample = source.read(rows[0])
    dark = ndi.label(sample.image < 100)[0] > 0  # the drawn beads, which the disks should cover
    overlap = (sample.mask & dark).sum() / (sample.mask | dark).sum()
    assert sample.labels.max() == counts[0] and overlap > 0.7
    auto = PointsSource(root).read(rows[0])  # the size estimated from the frame draws about the same disks
    assert abs(int(auto.mask.sum()) - int(sample.mask.sum())) < 0.25 * sample.mask.sum()
    (root / "points" / "f1.csv").unlink()
    (root / "points" / "stray.csv").write_text("y,x\n")
    with pytest.raises(BeadDataError, match=r"(?s)f1\.png has no points file in .*stray\.csv has no image"):
        PointsSource(root).pairs()


@pytest.mark.slow
def test_a_points_only_folder_trains_and_its_model_counts_the_beads(tmp_path, compose_config, predict_here):
    from beadseg.pretrained import CHECKPOINT
    from beadseg.training.task import train

    root, counts = points_folder(tmp_path / "data", frames=6)
    cfg = compose_config("train", ["debug=fast", "data=points", f"data.root={root}", "target=centres",
                                   "model.base_channels=16", f"init_from={CHECKPOINT}", "optimizer.lr=1e-5",
                                   "image.bead_diameter=9", "data.patch_size=64",
                                   f"paths.output_dir={tmp_path / 'run'}"])
    assert cfg.data.source.bead_diameter == 9
    result = train(cfg)
    assert result["val_object_f1"] > 0.9 and result["best_val_jaccard"] > 0.7  # its validation truth: the disks
    out = tmp_path / "counted"
    predict_here(f"ckpt={result['last_checkpoint']}", f"input={root / 'images'}", f"output={out}",
                 "postprocess.edge_rule=none")
    found = {row["image"]: int(row["count"]) for row in table(out / "counts.csv")}
    assert all(abs(found[f"f{index}"] - truth) <= 2 for index, truth in enumerate(counts)), (found, counts)


def test_the_real_bead_preset_takes_a_points_folder_and_cuts_composites_from_its_beads(tmp_path, compose_config):
    from beadseg.datasets import build_datamodule

    root, counts = points_folder(tmp_path / "data", frames=4)
    cfg = compose_config("train", ["experiment=microbeads_real", f"data.root={root}", "data.annotations=points",
                                   "image.bead_diameter=9", f"paths.output_dir={tmp_path / 'run'}"])
    source = build_datamodule(cfg.data).source  # as training builds it
    folder, composites = source.sources[0], source.train_only[0]
    assert isinstance(folder, PointsSource) and isinstance(composites.folder, PointsSource)
    assert [row["bead_count"] for row in folder.entries()] == counts
    name, image, labels = composites.render(0)  # beads cut out of the frames at their points, drawn anew
    assert image.shape == (128, 128) and labels.max() >= 5
    areas = np.bincount(labels.ravel())[1:]
    assert np.median(areas[areas > 0]) == pytest.approx(np.pi * 4.5**2, rel=0.35)


def test_points_on_a_frame_whose_bead_size_cannot_be_estimated_are_refused_by_name(tmp_path):
    (tmp_path / "images").mkdir()
    iio.imwrite(tmp_path / "images" / "flat.png", np.full((64, 64), 120, np.uint8))  # no bead to measure
    write_points(tmp_path / "points" / "flat.csv", np.array([[20.0, 20.0]]))
    with pytest.raises(BeadDataError, match=r"flat\.csv: the bead size cannot be taken from its image .*"
                                            r"image\.bead_diameter=PX"):
        PointsSource(tmp_path).entries()
    assert PointsSource(tmp_path, bead_diameter=9.0).entries()[0]["bead_count"] == 1  # given, it is drawn
