"""Splits are stratified by bead density, keep groups whole, and depend only on the seed."""

from collections import Counter

import numpy as np
import pytest

from beadseg.data.split import density_bins, group_names, stratified_split


def test_density_bins_use_inclusive_upper_edges():
    assert density_bins([0, 5, 6, 15, 16, 30, 31, 100, 101], [5, 15, 30, 100]).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4]


def test_every_density_bin_is_split_in_proportion():
    counts = [2] * 20 + [10] * 20 + [50] * 20 + [300] * 20
    splits = stratified_split(counts, [str(i) for i in range(80)], val_fraction=0.25, seed=3)
    for low in range(0, 80, 20):
        assert Counter(splits[low : low + 20]) == {"train": 15, "val": 5}


def test_split_is_deterministic_and_seed_dependent():
    counts = list(np.random.default_rng(0).integers(0, 400, 60))
    names = [f"i{k}" for k in range(60)]
    assert stratified_split(counts, names, 0.2, seed=1) == stratified_split(counts, names, 0.2, seed=1)
    assert stratified_split(counts, names, 0.2, seed=1) != stratified_split(counts, names, 0.2, seed=2)


def test_groups_never_straddle_splits():
    names = [f"{dilution}x_capture{c}_grid_r{r}_c0" for dilution in (160, 640) for c in range(4) for r in range(5)]
    groups = group_names(names, r"^(.*)_grid_")
    assert len(set(groups)) == 8
    counts = [300 if n.startswith("160x") else 20 for n in names]
    splits = stratified_split(counts, groups, val_fraction=0.25, test_fraction=0.25, seed=0)
    by_group: dict[str, set] = {}
    for group, split in zip(groups, splits):
        by_group.setdefault(group, set()).add(split)
    assert all(len(sides) == 1 for sides in by_group.values())
    assert {"train", "val", "test"} <= set(splits)
    # each density (dilution) contributes to validation
    assert {n.split("x")[0] for n, s in zip(names, splits) if s == "val"} == {"160", "640"}


def test_names_without_a_match_are_their_own_group():
    assert group_names(["a_grid_r0", "b"], r"^(.*)_grid_") == ["a", "b"]


def test_train_fraction_subsamples_training_images_only():
    counts = [2] * 40 + [200] * 40
    names = [str(i) for i in range(80)]
    full = stratified_split(counts, names, 0.25, seed=0)
    half = stratified_split(counts, names, 0.25, train_fraction=0.5, seed=0)
    assert [s == "val" for s in full] == [s == "val" for s in half]
    assert Counter(half)["train"] == 30 and Counter(half)["unused"] == 30
    assert Counter(half[:40])["train"] == Counter(half[40:])["train"] == 15


@pytest.mark.parametrize("val, test", [(1.0, 0.0), (0.6, 0.5), (-0.1, 0)])
def test_bad_fractions_are_refused(val, test):
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split([1, 2, 3], ["a", "b", "c"], val, test)


def test_named_groups_are_held_out_whole_as_test():
    names = [f"cap{c}_grid_r{r}" for c in range(5) for r in range(4)]
    groups = group_names(names, r"^(.*)_grid_")
    splits = stratified_split([10] * 20, groups, val_fraction=0.25, seed=0, test_groups=("cap3",))
    assert [s for g, s in zip(groups, splits) if g == "cap3"] == ["test"] * 4
    assert "test" not in [s for g, s in zip(groups, splits) if g != "cap3"] and "val" in splits
    with pytest.raises(ValueError, match="name no group"):
        stratified_split([10] * 20, groups, 0.25, test_groups=("cap9",))
