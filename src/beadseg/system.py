"""What beadseg asks of the machine: the cores it may use, and memory handed back as it goes."""

from __future__ import annotations

import ctypes
import mmap
import os

import numpy as np


def usable_cpus() -> int:
    """The cores this process may run on (its affinity, e.g. under SLURM or ``taskset``), not the machine's.

    Examples
    --------
    >>> usable_cpus() >= 1
    True
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def release_pages(*arrays: np.ndarray | None) -> None:
    """Drop the pages of memory-mapped arrays from this process's resident memory (their data stays in the file
    and comes back on the next access), so that walking a huge map does not pile it up in RAM."""
    for array in arrays:
        mapping = getattr(array, "_mmap", None)
        if mapping is not None and hasattr(mapping, "madvise"):
            mapping.madvise(mmap.MADV_DONTNEED)


def keep_freed_memory() -> None:
    """Let this process reuse the memory it frees for the next frame's arrays instead of taking fresh pages from
    the kernel each time: glibc's malloc maps large arrays anew and hands freed heap back, and touching the new
    pages cost about a sixth of a frame's post-processing (measured). Loader and finishing workers ask for it; the
    network's process does not need to (torch's own large frees raise glibc's thresholds there: no change measured
    in a whole run). Other C libraries: nothing changes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: arrays up to 32 MiB from the heap (glibc's maximum)
    libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD: keep up to 64 MiB of freed heap for reuse (512: the same speed)


def yield_to_the_network() -> None:
    """Run this (helper) process only on the cores a network on the CPU leaves idle: Linux's idle scheduling class
    (``SCHED_IDLE``; elsewhere the lowest priority, nice 19). A helper at the network's own priority stalls its
    threads each time it takes a core from them (a busy process beside the shipped model's 2-thread pass made it
    take 4.4 s instead of 2.2; at nice 19 2.3-2.65 s; as ``SCHED_IDLE`` 2.34-2.42 against 2.36-2.42 alone, while
    it still got about 0.1 s of a core per pass, measured): it uses the gaps (the network's own single-threaded
    moments, the frames finished between passes) and every core when the network waits for it."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif hasattr(os, "nice"):
        os.nice(19)


def start_helper(yield_cores: bool) -> None:
    """A finishing worker's start: it keeps its freed memory (:func:`keep_freed_memory`) and, beside a network
    on the CPU, yields the cores to it (:func:`yield_to_the_network`)."""
    keep_freed_memory()
    if yield_cores:
        yield_to_the_network()
