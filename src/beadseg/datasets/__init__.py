"""What training reads: on-demand datasets with a bounded cache and seeded augmentation, the Lightning DataModules
(segmentation, frame classification) and litdata shards."""

from __future__ import annotations

# Set on the command line (data.root=DIR, ...) and read by the source's settings through interpolation; they are
# not arguments of the DataModule.
SHORTCUT_KEYS = ("root", "csv_file", "synthetic_images", "synthetic_modality", "input_dir", "composites_per_image",
                 "composite_frames", "annotations")


def build_datamodule(data_cfg):
    """The LightningDataModule a ``data`` config describes (its command-line shortcuts left out)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(data_cfg, resolve=True)
    for key in SHORTCUT_KEYS:
        settings.pop(key, None)
    return instantiate(settings)
