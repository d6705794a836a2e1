"""A pool of worker processes beside the network (as nnU-Net v2 runs its export pool while the GPU works on the
next case), or of this process's threads between the network's passes, with a bounded number of calls in flight so
that memory stays flat, and how many workers to start.

Only light modules are imported here (no torch): a spawned worker starts in about a second.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor

from beadseg.system import start_helper, usable_cpus
from beadseg.workers.handover import SharedBlocks, call_placed


class WorkerPool:
    """Calls run in ``workers`` spawned processes (safe beside CUDA and the loader's workers), at most two per
    worker in flight: ``submit`` waits for the oldest once that many are queued; their large arrays travel in
    shared memory (:mod:`~beadseg.workers.handover`). ``workers=0``: the calls run in this process, on one thread
    per usable core (numpy, scipy and the image writers let go of the GIL in their heavy parts: the two frames of a
    CPU step finish in 65 ms a frame instead of 106 on 2 cores), and :meth:`end_step` waits for them, so that the
    network's next pass has every core. Results reach ``on_result`` in the order the calls were submitted.
    ``yield_cores``: the workers run at the lowest CPU priority (beside a network on the CPU,
    :func:`~beadseg.system.yield_to_the_network`)."""

    def __init__(self, workers: int, on_result: Callable, yield_cores: bool = False) -> None:
        self.in_process = not workers
        self.on_result, self.limit = on_result, 2 * (workers or usable_cpus())
        self.pending: deque[tuple[Future, int | None]] = deque()
        self.blocks = SharedBlocks(0 if self.in_process else self.limit + 1)
        self.executor: Executor | None = (
            ThreadPoolExecutor(usable_cpus(), thread_name_prefix="beadseg-finish") if self.in_process
            else ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=start_helper, initargs=(yield_cores,)))

    def submit(self, function: Callable, *args) -> None:
        assert self.executor is not None, "the pool is closed"
        if self.in_process:
            self.pending.append((self.executor.submit(function, *args), None))
        else:
            block, placed = self.blocks.place(args)
            self.pending.append((self.executor.submit(call_placed, function, placed), block))
        while len(self.pending) > self.limit:
            self._hand_on()

    def end_step(self) -> None:
        """The caller's step is done: calls running on this process's threads (``workers=0``) are waited for, so
        that the network's next pass has every core; worker processes go on beside it."""
        if self.in_process:
            self.drain()

    def _hand_on(self) -> None:
        """The oldest call's result to ``on_result``, once it is done; its block serves the next call."""
        future, block = self.pending.popleft()
        try:
            result = future.result()
        finally:
            self.blocks.release(block)
        self.on_result(result)

    def put(self, result) -> None:
        """A result already at hand, handed on in its turn."""
        done: Future = Future()
        done.set_result(result)
        self.pending.append((done, None))

    def drain(self) -> None:
        """Wait for every call in flight (and hand its result on)."""
        while self.pending:
            self._hand_on()

    def close(self) -> None:
        """Stop the workers: calls not started yet are dropped, results not handed on are forgotten (after
        :meth:`drain` there are none; after an error, ``resume=true`` redoes those frames)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
        self.pending.clear()
        self.blocks.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *error) -> None:
        if error[0] is None:
            self.drain()
        self.close()


def finishing_workers(post_workers: int | str, spare_cores: int, frames: int) -> int:
    """``post_workers``, where ``auto`` is the ``spare_cores`` the caller leaves, never more than there are frames
    after the first (a single frame is finished at once, without starting a process)."""
    if post_workers != "auto":
        return int(post_workers)
    return min(max(spare_cores, 0), max(frames - 1, 0))


def prediction_spare_cores(read_ahead: int, network_on_cpu: bool) -> int:
    """Cores beside a prediction's network: a network on the CPU already uses every core (torch's threads), so
    none and each frame is finished between two forward passes; beside a GPU (or the single-threaded classical
    detector) those the main process and the readers leave, at least one."""
    return 0 if network_on_cpu else max(1, usable_cpus() - 1 - read_ahead)


def network_on_cpu(predictor) -> bool:
    """Whether the predictor runs a network on the CPU (the classical detector has none)."""
    return predictor.net is not None and next(predictor.net.parameters()).device.type == "cpu"
