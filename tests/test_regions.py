"""Counts inside drawn regions (``beadseg-predict regions=DIR``): regions that tile a frame add up to its count,
each region's count is the counted beads whose centres it holds, areas and densities from the pixel size and the
chamber depth; region files of another size or a missing folder are refused before any output."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from beadseg.data.io import BeadDataError
from beadseg.data.synthetic import render_beads
from beadseg.formats.regions import read_regions
from tests.helpers import table

SIZE = 160


def quadrants_geojson(path, size: int) -> None:
    half = size // 2
    features = [{"type": "Feature", "properties": {"name": f"q{index}"},
                 "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + half, y], [x + half, y + half],
                                                                 [x, y + half], [x, y]]]}}
                for index, (x, y) in enumerate([(0, 0), (half, 0), (0, half), (half, half)])]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def halves_imagej(path, size: int) -> None:
    from roifile import ImagejRoi, roiwrite

    top = ImagejRoi.frompoints(np.array([[0, 0], [size, 0], [size, 61], [0, 61]], float), name="top")
    bottom = ImagejRoi.frompoints(np.array([[0, 61], [size, 61], [size, size], [0, size]], float), name="bottom")
    roiwrite(path, [top, bottom], mode="w")


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, name in enumerate(("a", "b")):
        image, _ = render_beads(np.random.default_rng(10 + index), SIZE, 40, "brightfield", bit_depth=8)
        iio.imwrite(folder / f"{name}.png", image)
    regions = tmp_path / "regions"
    regions.mkdir()
    quadrants_geojson(regions / "a.geojson", SIZE)
    halves_imagej(regions / "b_rois.zip", SIZE)
    return folder, regions


def test_regions_that_tile_the_frame_add_up_to_its_count(frames, tmp_path, predict_here):
    folder, regions = frames
    out = tmp_path / "out"
    predict_here(f"input={folder}", f"output={out}", f"regions={regions}", "image.pixel_size_um=0.5",
                 "dilution.depth_um=100")
    counts = {row["image"]: int(row["count"]) for row in table(out / "counts.csv")}
    assert min(counts.values()) >= 25  # the shipped model finds the 40 drawn beads first
    rows = table(out / "regions.csv")
    assert [(row["image"], row["region"]) for row in rows] == [("a", "q0"), ("a", "q1"), ("a", "q2"), ("a", "q3"),
                                                              ("b", "top"), ("b", "bottom")]
    for name, total in counts.items():
        assert sum(int(row["count"]) for row in rows if row["image"] == name) == total
        assert sum(float(row["area_px"]) for row in rows if row["image"] == name) == SIZE * SIZE
    beads = [(float(row["centroid_y"]), float(row["centroid_x"])) for row in table(out / "objects.csv")
             if row["image"] == "a" and row["counted"] == "True"]
    in_q1 = sum(round(y) < SIZE // 2 <= round(x) for y, x in beads)  # the top right quadrant, pixel by pixel
    q1 = rows[1]
    assert int(q1["count"]) == in_q1 and float(q1["area_um2"]) == pytest.approx((SIZE // 2) ** 2 * 0.25)
    assert float(q1["beads_per_mm2"]) == pytest.approx(in_q1 / float(q1["area_um2"]) * 1e6, rel=1e-3)
    assert float(q1["beads_per_ul"]) == pytest.approx(in_q1 / (float(q1["area_um2"]) * 100) * 1e9, rel=1e-3)


def test_a_region_file_for_another_image_is_refused_before_any_output(frames, tmp_path, predict_here):
    folder, regions = frames
    quadrants_geojson(regions / "a.geojson", 2 * SIZE)
    with pytest.raises(BeadDataError, match=r"a\.geojson: region 'q1' reaches .* outside its image a\.png of 160x160"):
        predict_here(f"input={folder}", f"output={tmp_path / 'out'}", f"regions={regions}")
    with pytest.raises(BeadDataError, match="regions=.*nowhere: no such folder"):
        predict_here(f"input={folder}", f"output={tmp_path / 'out'}", f"regions={tmp_path / 'nowhere'}")
    assert not (tmp_path / "out").exists()
    (regions / "broken.geojson").write_text("{not json")
    with pytest.raises(BeadDataError, match="broken.geojson cannot be read as regions"):
        read_regions(regions / "broken.geojson")
