"""The lab's real bead images (beside the checkout in shared/; skipped where absent)."""

from collections import defaultdict

import numpy as np

from beadseg.data.folder import FolderSource
from beadseg.datasets.datamodule import BeadDataModule


def test_real_images_load_and_split_by_whole_captures(real_data, tmp_path):
    datamodule = BeadDataModule(
        FolderSource(real_data), group_by=r"^(.*)_grid_", val_fraction=0.3, test_fraction=0.15, output_dir=str(tmp_path)
    )
    datamodule.setup("fit")
    table = datamodule.split_table
    assert len(table) == 56 and len({row["group"] for row in table}) == 7
    sides = defaultdict(set)
    for row in table:
        sides[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in sides.values()), sides
    assert {"train", "val", "test"} <= {row["split"] for row in table}
    image = datamodule.datasets["val"][0]["image"]
    assert image.shape == (1, 512, 512)  # normalised per image: its 1st and 99.8th percentiles map to 0 and 1
    assert abs(float(np.percentile(image, 1))) < 0.01 and abs(float(np.percentile(image, 99.8)) - 1) < 0.01
    assert (tmp_path / "split.csv").read_text().count("\n") == 57
