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
    """Let this (finishing) process reuse the memory it frees for the next frame's arrays instead of taking fresh
    pages from the kernel each time: glibc's malloc maps large arrays anew and hands freed heap back, and touching
    the new pages cost about a sixth of a frame's post-processing (measured). Other C libraries: nothing changes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: arrays up to 32 MiB from the heap (glibc's maximum)
    libc.mallopt(-1, 512 * 2**20)  # M_TRIM_THRESHOLD: keep up to 512 MiB of freed heap for reuse
