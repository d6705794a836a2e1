"""Arrays handed to worker processes through shared memory: a call's large arrays are copied into a block the
workers have mapped already, and only their place in it travels through the pipe. Pickling a frame's 17 MB of
image and maps through a process pool's pipe took 63 ms (measured, 2-core machine); the copy takes a few.

No torch here: the finishing workers start without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SMALLEST = 1 << 16  # bytes: smaller arrays are pickled with the call
ALIGN = 64


@dataclasses.dataclass(frozen=True)
class SharedArray:
    """Where an array lies in a shared block."""

    block: str
    offset: int
    dtype: str
    shape: tuple[int, ...]


def _convert(value: Any, convert: Callable[[Any], Any]) -> Any:
    """``value`` with every array in it (in dicts, dataclasses, lists, tuples, named tuples) passed through
    ``convert``."""
    if isinstance(value, (np.ndarray, SharedArray)):
        return convert(value)
    if isinstance(value, dict):
        return {key: _convert(item, convert) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a Frame
        return dataclasses.replace(value, **{field.name: _convert(getattr(value, field.name), convert)
                                             for field in dataclasses.fields(value) if field.init})
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_convert(item, convert) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(item, convert) for item in value)
    return value


def _worth_sharing(value: Any) -> bool:
    return isinstance(value, np.ndarray) and not isinstance(value, np.memmap) and value.nbytes >= SMALLEST


class SharedBlocks:
    """One shared block per call in flight (``count``), each reused by the next call and grown when a call needs
    more. A block too large for the free space of ``/dev/shm`` is not made: those calls are pickled instead."""

    def __init__(self, count: int) -> None:
        self.blocks: list[SharedMemory | None] = [None] * count
        self.free = deque(range(count))
        self.generation = 0

    def place(self, args: tuple) -> tuple[int | None, tuple]:
        """A free block's index (``None``: none used) and ``args`` with their large arrays copied into it."""
        arrays: list[np.ndarray] = []
        _convert(args, lambda array: arrays.append(array) if _worth_sharing(array) else None)
        need = sum(-(-array.nbytes // ALIGN) * ALIGN for array in arrays)
        if not need:
            return None, args
        index = self.free.popleft()
        block = self.blocks[index]
        if block is None or block.size < need:
            if block is not None:
                block.close()
                block.unlink()
                self.blocks[index] = block = None
            if not room_for(need):
                self.free.appendleft(index)
                return None, args
            self.generation += 1
            block = self.blocks[index] = SharedMemory(f"beadseg-{os.getpid()}-{index}-{self.generation}", True, need)
        offset = 0

        def copy_in(array: np.ndarray) -> Any:
            nonlocal offset
            if not _worth_sharing(array):
                return array
            np.copyto(np.ndarray(array.shape, array.dtype, block.buf, offset), array)
            placed = SharedArray(block.name, offset, array.dtype.str, array.shape)
            offset += -(-array.nbytes // ALIGN) * ALIGN
            return placed

        return index, _convert(args, copy_in)

    def release(self, index: int | None) -> None:
        """The call that used block ``index`` is done: the block serves the next."""
        if index is not None:
            self.free.append(index)

    def close(self) -> None:
        for block in self.blocks:
            if block is not None:
                block.close()
                block.unlink()
        self.blocks = [None] * len(self.blocks)


def room_for(size: int) -> bool:
    """Whether ``/dev/shm`` (a container's is often 64 MB) has ``size`` bytes free with a margin."""
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        return False
    if free < 2 * size:
        log.warning("/dev/shm has %d MB free: frames go to the workers through a pipe (slower); give the container "
                    "more shared memory (docker --shm-size)", free // 2**20)
        return False
    return True


_ATTACHED: dict[str, SharedMemory] = {}


def _attached(name: str) -> SharedMemory:
    """The block ``name``, mapped once per worker (a grown block's predecessor is let go)."""
    if name not in _ATTACHED:
        slot = name.rsplit("-", 1)[0]
        for old in [old for old in _ATTACHED if old.rsplit("-", 1)[0] == slot]:
            try:
                _ATTACHED[old].close()
                del _ATTACHED[old]
            except BufferError:  # still viewed by a live array: kept until the next growth
                pass
        _ATTACHED[name] = SharedMemory(name)
    return _ATTACHED[name]


def call_placed(function: Callable, args: tuple) -> Any:
    """``function(*args)`` in a worker, the arrays :meth:`SharedBlocks.place` put in shared blocks seen where they
    lie."""
    return function(*_convert(args, lambda value: np.ndarray(value.shape, np.dtype(value.dtype),
                                                             _attached(value.block).buf, value.offset)
                              if isinstance(value, SharedArray) else value))
