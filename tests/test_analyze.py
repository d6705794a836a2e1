"""beadseg-analyze on synthetic folders with planted label errors whose answers are known."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from beadseg.analysis.analyze import analyze
from beadseg.data.io import BeadDataError
from tests.helpers import table

SIZE, SPACING = 160, 20


def planted_images(count: int = 6, seed: int = 0):
    """Images with well separated dark beads on a jittered grid, and their exact instance labels."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        labels = np.zeros((SIZE, SIZE), np.int32)
        centres = [(y, x) for y in range(12, SIZE - 8, SPACING) for x in range(12, SIZE - 8, SPACING)]
        keep = rng.random(len(centres)) < 0.7
        for bead, (y, x) in enumerate(np.asarray(centres)[keep], start=1):
            labels[disk((y + rng.uniform(-3, 3), x + rng.uniform(-3, 3)), rng.uniform(3, 5), shape=labels.shape)] = bead
        signal = ndi.gaussian_filter((labels > 0).astype(float), 1.0)
        image = 180 - 70 * signal + rng.normal(0, 3, signal.shape) + np.linspace(-10, 10, SIZE)[None]
        yield f"img{index}", np.clip(image, 0, 255).astype(np.uint8), labels


def write_folder(root: Path, mask_transform=lambda labels, index: labels > 0) -> dict:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    truth = {}
    for index, (name, image, labels) in enumerate(planted_images()):
        iio.imwrite(root / "images" / f"{name}.png", image)
        iio.imwrite(root / "masks" / f"{name}.png", (mask_transform(labels, index) > 0).astype(np.uint8) * 255)
        truth[name] = labels
    return truth


@pytest.fixture
def run_analyze(compose_config, tmp_path):
    def _run(root: Path, *overrides: str) -> tuple[Path, list[dict], dict]:
        out = tmp_path / f"out_{root.name}"
        analyze(compose_config("analyze", [f"data.root={root}", f"out={out}", *overrides]))
        rows = list(table(out / "per_image.csv"))
        return out, rows, json.loads((out / "summary.json").read_text())

    return _run


def test_counts_and_areas_are_exact_and_clean_labels_pass(tmp_path, run_analyze):
    truth = write_folder(tmp_path / "clean")
    out, rows, summary = run_analyze(tmp_path / "clean")
    for row in rows:
        labels = truth[row["image"]]
        areas = np.bincount(labels.ravel())[1:]
        assert int(row["bead_count"]) == labels.max()
        assert float(row["mean_bead_area"]) == pytest.approx(areas.mean(), abs=0.01)
        assert float(row["positive_ratio"]) == pytest.approx((labels > 0).mean(), abs=1e-5)
        assert row["flags"] == "" and abs(float(row["offset_y"])) < 1 and abs(float(row["offset_x"])) < 1
        assert row["polarity"] == "dark" and float(row["labelled_fraction"]) == 1.0
    all_areas = np.concatenate([np.bincount(labels.ravel())[1:] for labels in truth.values()])
    assert summary["bead_area_px"]["median"] == pytest.approx(np.median(all_areas))
    assert summary["beads_per_image"]["max"] == max(labels.max() for labels in truth.values())
    assert summary["label_qa"]["images_offset"] == summary["label_qa"]["images_missing_labels"] == 0
    assert summary["mask_kinds"] == {"binary": 6} and {row["mask_kind"] for row in rows} == {"binary"}
    report = (out / "REPORT.md").read_text()
    assert "Masks read as: binary masks" in report
    assert "(dark in all 6 images)" in report and "{" not in report.split("on their background")[1][:40]  # no raw dict
    for name in ("distribution_analysis.png", "sample_images.png", "label_qa.png", "REPORT.md", "recommended.yaml"):
        assert (out / name).stat().st_size > 0
    assert iio.imread(out / "label_qa.png").shape[0] <= 2200  # a figure one can look at, not a 4000 px strip


def test_planted_shift_is_found_on_every_shifted_image_only(tmp_path, run_analyze):
    # masks of odd images moved 3 px down and 2 px left
    shift = lambda labels, i: ndi.shift(labels, (3, -2), order=0) if i % 2 else labels  # noqa: E731
    write_folder(tmp_path / "shifted", shift)
    _, rows, summary = run_analyze(tmp_path / "shifted")
    for index, row in enumerate(rows):
        if index % 2:
            assert float(row["offset_y"]) == pytest.approx(3, abs=1) and float(row["offset_x"]) == pytest.approx(-2, abs=1)
            assert "offset" in row["flags"]
        else:
            assert "offset" not in row["flags"] and np.hypot(float(row["offset_y"]), float(row["offset_x"])) < 1
    assert summary["label_qa"]["images_offset"] == 3


def test_planted_missing_beads_are_found(tmp_path, run_analyze):
    removed = {}

    def drop(labels, index):
        gone = np.random.default_rng(index).permutation(np.arange(1, labels.max() + 1))[: labels.max() // 5]
        removed[index] = [ndi.center_of_mass(labels == bead) for bead in gone]
        return np.where(np.isin(labels, gone), 0, labels)

    write_folder(tmp_path / "holes", drop)
    out, rows, _ = run_analyze(tmp_path / "holes")
    # match removed bead centres to the unlabelled beads (recomputed through the public checker)
    from beadseg.beads.classical import detect_beads
    from beadseg.beads.label_qa import check_labels
    from beadseg.data.folder import FolderSource

    found, total = 0, sum(len(centres) for centres in removed.values())
    for index, sample in enumerate(FolderSource(tmp_path / "holes").load()):
        check = check_labels(sample.mask, detect_beads(sample.image))
        for centre in removed[index]:
            found += bool(len(check.unlabelled_centroids)) and np.hypot(*(check.unlabelled_centroids - centre).T).min() <= 2
        assert abs(int(rows[index]["unlabelled_beads"]) - len(removed[index])) <= 2  # the report counts what was removed
    assert found / total >= 0.8, (found, total)
    assert sum(int(r["unlabelled_beads"]) for r in rows) <= total + 3  # few false alarms


def test_a_mask_of_another_image_is_named_as_such(tmp_path, run_analyze):
    """Issue 29: a mask belonging to another image was reported only as "missing labels"; its labels cover no bead."""
    others = {index: labels for index, (_, _, labels) in enumerate(planted_images(seed=7))}
    write_folder(tmp_path / "swapped", lambda labels, index: others[index] if index == 2 else labels)
    out, rows, summary = run_analyze(tmp_path / "swapped")
    flagged = {row["image"]: row["flags"].split(";") for row in rows if "labels_without_beads" in row["flags"]}
    assert list(flagged) == ["img2"]
    assert int(rows[2]["labels_without_beads"]) > int(rows[2]["labels"]) / 2
    assert summary["label_qa"]["images_labels_without_beads"] == 1
    assert "Labels with no bead under them**: 1 images" in (out / "REPORT.md").read_text()


def test_eroded_masks_show_a_size_ratio_below_one(tmp_path, run_analyze):
    write_folder(tmp_path / "full")
    write_folder(tmp_path / "eroded", lambda labels, i: ndi.binary_erosion(labels > 0, iterations=1))
    full = run_analyze(tmp_path / "full")[2]["label_qa"]["median_size_ratio"]
    eroded = run_analyze(tmp_path / "eroded")[2]["label_qa"]["median_size_ratio"]
    assert eroded < 0.8 < full and eroded < full - 0.2


def test_fix_undoes_a_planted_shift_and_never_touches_originals(tmp_path, run_analyze):
    truth = write_folder(tmp_path / "shifted", lambda labels, i: ndi.shift(labels, (3, -2), order=0))
    originals = {p.name: p.read_bytes() for p in (tmp_path / "shifted" / "masks").iterdir()}
    fixed = tmp_path / "fixed"
    run_analyze(tmp_path / "shifted", "fix=true", f"out_masks={fixed}")
    for name, labels in truth.items():
        corrected = iio.imread(fixed / f"{name}.png") > 0
        inner = (slice(4, -4), slice(4, -4))  # what the shift pushed out of the frame cannot come back
        assert np.array_equal(corrected[inner], (labels > 0)[inner])
    assert {p.name: p.read_bytes() for p in (tmp_path / "shifted" / "masks").iterdir()} == originals
    with pytest.raises(FileExistsError, match="never overwrites masks"):
        run_analyze(tmp_path / "shifted", "fix=true", f"out_masks={fixed}")


def test_bad_input_gives_the_training_errors(tmp_path, run_analyze):
    write_folder(tmp_path / "broken")
    (tmp_path / "broken" / "masks" / "img2.png").unlink()
    with pytest.raises(BeadDataError, match=r"img2\.png has no mask"):
        run_analyze(tmp_path / "broken")


@pytest.mark.slow
def test_cli_with_compare_and_the_recommendation_trains(tmp_path):
    write_folder(tmp_path / "a")
    write_folder(tmp_path / "b", lambda labels, i: ndi.binary_dilation(labels > 0, iterations=2))
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "report"
    done = subprocess.run([str(bin_dir / "beadseg-analyze"), f"data.root={tmp_path / 'a'}", f"compare={tmp_path / 'b'}",
                           f"hydra.run.dir={out}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"report {out}/REPORT.md" in done.stdout
    report = (out / "REPORT.md").read_text()
    assert "## Compared with" in report and (out / "comparison.png").is_file()
    assert "bead diameter" in {row["measure"].split(" (")[0] for row in table(out / "comparison.csv")}
    trained = subprocess.run([str(bin_dir / "beadseg-train"), "--config-dir", str(out), "--config-name", "recommended",
                              "debug=fast", "data.val_fraction=0.34", f"hydra.run.dir={tmp_path / 'train'}"],
                             capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "train" / "checkpoints" / "last.ckpt").is_file()
    composed = (tmp_path / "train" / ".hydra" / "config.yaml").read_text()
    assert f"root: {tmp_path / 'a'}" in composed
    result = json.loads((tmp_path / "train" / "result.json").read_text())  # the shipped model, fine-tuned and tuned
    assert result["checkpoint"].endswith(".tuned.ckpt") and "init_from: " in composed


def test_eval_names_the_label_fault_of_a_worst_image(tmp_path, compose_config):
    from beadseg.evaluation.evaluate import evaluate

    shift = lambda labels, i: ndi.shift(labels, (3, -3), order=0) if i == 0 else labels  # noqa: E731
    truth = write_folder(tmp_path / "shifted", shift)
    saved = tmp_path / "saved"  # predictions that are exactly right: the shifted mask scores them low
    saved.mkdir()
    for name, labels in truth.items():
        iio.imwrite(saved / f"{name}.png", (labels > 0).astype(np.uint8) * 255)
    metrics = evaluate(compose_config("eval", [f"predictions={saved}", f"data.root={tmp_path / 'shifted'}",
                                               f"output={tmp_path / 'e'}", "worst_images=2"]))["metrics"]
    worst = metrics["worst_images"]
    assert worst[0]["image"] == next(iter(truth)) and "mask shifted by 4.2 px" in worst[0]["label_faults"]
    assert worst[1]["label_faults"] == ""  # a clean mask is not accused
