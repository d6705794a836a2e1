"""Train/val/test splits stratified by bead density, with whole groups (captures) kept on one side."""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

SPLITS = ("train", "val", "test")
DENSITY_EDGES = (5, 15, 30, 100)  # beads per image: bins 0-5, 6-15, 16-30, 31-100, >100 (split, analysis)


def group_names(names: list[str], group_by: str | None, key: str = "group_by", seconds: float = 5.0) -> list[str]:
    """The group of each name: the regex's first capture group (or whole match); no match: the name itself.

    A regex that backtracks without end on some name (``'^(a+)+b'`` on ``aaa…a.png``) is stopped after ``seconds``
    (in the main thread; elsewhere it runs unbounded) with an error naming ``key`` and the name.

    Parameters
    ----------
    names : list of str
        Image names (stems).
    group_by : str or None
        A regular expression; None or empty: every name is its own group.
    key : str
        The setting the regex came from, for the error.
    seconds : float
        The time the whole grouping may take.

    Returns
    -------
    list of str
        One group per name.

    Examples
    --------
    >>> group_names(["640x_a_grid_r0_c0", "640x_a_grid_r0_c1", "320x_b"], r"^(\d+)x_")
    ['640', '640', '320']
    >>> group_names(["a" * 40], "^(a+)+b", key="group_regex", seconds=0.2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: group_regex='^(a+)+b' takes longer than 0.2 s on the name aaa...a: it backtracks without end (...)...
    """
    if not group_by:
        return list(names)
    return [(match.group(1) if match.groups() else match.group(0)) if match else name
            for name, match in zip(names, bounded_search(names, group_by, key, seconds))]


def bounded_search(names: list[str], regex: str, key: str, seconds: float = 5.0) -> list[re.Match | None]:
    """``re.search(regex, name)`` for each name, stopped after ``seconds`` in all (a regex that backtracks without
    end is refused naming ``key`` and the name; in the main thread, elsewhere unbounded).

    Examples
    --------
    >>> [bool(m) for m in bounded_search(["320x_a", "b"], r"^\d+x_", "data.composite_frames")]
    [True, False]
    """
    pattern = re.compile(regex)
    found: list[re.Match | None] = []
    name = ""
    try:
        with time_bound(seconds):
            for name in names:
                found.append(pattern.search(name))
    except TimeoutError:
        raise ValueError(f"{key}={regex!r} takes longer than {seconds:g} s on the name {name}: it backtracks "
                         "without end (nested repetition such as (a+)+); write it without nesting") from None
    return found


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Within the block, a ``TimeoutError`` after ``seconds`` (a timer signal: main thread only, else no bound)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def stop(*_):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def density_bin_ranges(edges: tuple[int, ...]) -> list[tuple[int, int | None]]:
    """The bins as (lowest, highest) bead counts, the last open-ended: (0, 5), (6, 15), ..., (101, None)."""
    lows = [0, *(edge + 1 for edge in edges)]
    return list(zip(lows, [*edges, None]))


def density_bins(counts: list[float], edges: list[float]) -> np.ndarray:
    """Bin index of each bead count; ``edges`` are inclusive upper bounds (e.g. 5, 15, 30, 100)."""
    return np.digitize(counts, np.asarray(edges, float), right=True)


def stratified_split(
    counts: list[int],
    groups: list[str],
    val_fraction: float,
    test_fraction: float = 0.0,
    *, edges: tuple[float, ...] = DENSITY_EDGES,
    train_fraction: float = 1.0,
    seed: int = 0,
    test_groups: tuple[str, ...] = (),
) -> list[str]:
    """Assign each image to train/val/test (or ``unused`` when ``train_fraction`` < 1).

    ``test_groups`` go to test whole (leave-capture-out folds); the fractions then split the other groups.

    Groups are binned by their mean bead count; within each bin, groups (shuffled by ``seed``) go to
    whichever split is furthest below its share of that bin's images. The result depends only on the inputs.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction={val_fraction}, test_fraction={test_fraction}: each in [0, 1), sum < 1")
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction={train_fraction}: must be in (0, 1]")
    rng = np.random.default_rng(seed)
    unknown = set(test_groups) - set(groups)
    if unknown:
        raise ValueError(f"data.test_groups {sorted(unknown)} name no group; the groups are {sorted(set(groups))}")
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        if group not in test_groups:
            members[group].append(index)
    names = sorted(members)
    group_bins = density_bins([float(np.mean([counts[i] for i in members[g]])) for g in names], list(edges))
    targets = np.array([1 - val_fraction - test_fraction, val_fraction, test_fraction])

    assignment: dict[str, str] = {group: "test" for group in test_groups}
    for bin_index in np.unique(group_bins):
        in_bin = [g for g, b in zip(names, group_bins) if b == bin_index]
        rng.shuffle(in_bin)
        total = sum(len(members[g]) for g in in_bin)
        filled = np.zeros(3)
        for group in in_bin:
            split = int(np.argmax(targets * total - filled))
            assignment[group] = SPLITS[split]
            filled[split] += len(members[group])
    # Small data sets: make sure each requested split holds at least one group, taken from train.
    for wanted, fraction in (("val", val_fraction), ("test", test_fraction)):
        train_groups = [g for g in names if assignment[g] == "train"]
        if fraction > 0 and wanted not in assignment.values() and len(train_groups) > 1:
            assignment[train_groups[int(rng.integers(len(train_groups)))]] = wanted

    if train_fraction < 1:
        train_groups = [g for g in names if assignment[g] == "train"]
        train_bins = density_bins([float(np.mean([counts[i] for i in members[g]])) for g in train_groups], list(edges))
        for bin_index in np.unique(train_bins):
            in_bin = [g for g, b in zip(train_groups, train_bins) if b == bin_index]
            rng.shuffle(in_bin)
            for group in in_bin[int(np.ceil(train_fraction * len(in_bin))):]:
                assignment[group] = "unused"
    return [assignment[group] for group in groups]
