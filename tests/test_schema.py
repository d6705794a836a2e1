"""One schema: every leaf of every command's config is checked (the settings schema, or the network registry for
``model.*``) or named as free with a reason; the ranges of the network live in the registry alone."""

import pytest
from hydra import compose, initialize_config_dir

from beadseg.config import CONFIG_DIR
from beadseg.models.registry import DescriptionError
from beadseg.settings import BY_NAME, FREE, FREE_UNDER, SETTINGS, SOURCE, SettingError, _leaves, check_settings

PRESETS = {"train": [[], ["experiment=microbeads_real"], ["task=classify"], ["model=smp"], ["data=points"]],
           **{command: [[]] for command in SETTINGS if command != "train"}}


def composed(command: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(command, overrides)


def unchecked(cfg, command: str) -> list[str]:
    """The leaves of ``cfg`` no field checks and FREE does not name."""
    fields = SETTINGS[command]
    left = []
    for key, _ in _leaves(cfg):
        *parents, name = key.split(".")
        listed = ".".join(parents) if name.isdigit() else key  # an item of a list: the list's key
        if (listed in fields or name in BY_NAME or listed in FREE or key.startswith(tuple(FREE_UNDER))
                or (key.startswith("data.source.") and name in SOURCE)
                or name.startswith("_") or (name.isdigit() and parents and parents[-1] in BY_NAME)):
            continue
        left.append(key)
    return left


@pytest.mark.parametrize("command, overrides", [(c, o) for c, presets in PRESETS.items() for o in presets])
def test_every_leaf_a_command_reads_is_checked_or_named_free(command, overrides):
    assert unchecked(composed(command, overrides), command) == []


def test_the_check_sees_a_planted_unchecked_leaf():
    cfg = composed("predict", ["+planted_setting=3"])
    assert unchecked(cfg, "predict") == ["planted_setting"]


@pytest.mark.parametrize("override, key", [
    ("module.threshold=1.0", "module.threshold"), ("module.threshold=1.5", "module.threshold"),
    ("optimizer.lr=[0.001]", "optimizer.lr"), ("scheduler=plateau", None),
    ("+tune_thresholds.thresholds=[2.0,nan,-1]", "tune_thresholds.thresholds[0]"),
])
def test_train_settings_are_refused_by_key_before_any_work(override, key):
    cfg = composed("train", [override])
    if key is None:
        check_settings(cfg, "train")  # a good one passes
        return
    with pytest.raises(SettingError, match=key.replace("[", r"\[").replace("]", r"\]") + "="):
        check_settings(cfg, "train")


@pytest.mark.parametrize("override", ["model.depth=7", "model.dropout=0.97", "model.out_channels=9"])
def test_network_ranges_live_in_the_registry_and_refuse_before_the_data_is_read(override, tmp_path):
    from beadseg.training.task import train

    cfg = composed("train", [override, f"paths.output_dir={tmp_path}", "data=folder", "data.root=/nonexistent"])
    with pytest.raises(DescriptionError, match=override.split("=")[0] + "="):
        train(cfg)  # before the (missing) data folder is looked at
    assert not any(key.startswith("model.") for key in SETTINGS["train"])  # one place for their ranges
