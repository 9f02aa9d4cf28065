"""Choosing and describing the torch device, and the CPU float mode of our loops.

Training runs on a CUDA GPU when one is visible and on the CPU otherwise; users can force the
CPU (``--cpu``) when the GPU is busy or too small. The description is shown in the CLI log, the
Slicer panel and the demo report so that timings are never quoted without their hardware.
Training and inference both flush subnormal floats (a trained network's saturated units produce
them and slow the CPU several-fold) through one context manager that restores the caller's mode.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import torch

logger = logging.getLogger(__name__)


def resolve_device(force_cpu: bool = False) -> torch.device:
    """Return ``cuda`` when available and not forced off, else ``cpu``."""
    if not force_cpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def as_device(device: str | torch.device | None) -> torch.device:
    """The given device, or the automatic choice (CUDA, else CPU) for ``None``."""
    return resolve_device() if device is None else torch.device(device)


def describe_device(device: torch.device | str) -> str:
    """A short human-readable name, e.g. ``"cuda (NVIDIA H100)"`` or ``"cpu (2 threads)"``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero inside the block; restore the caller's setting after.

    torch has no getter for the flag, so it is probed: with flushing on, a subnormal input reads
    as zero.
    """
    probe = torch.tensor([1e-40], dtype=torch.float32)
    was_on = bool((probe * 1.0).item() == 0.0)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


@contextlib.contextmanager
def cpu_workers(device: torch.device) -> Iterator[ThreadPoolExecutor | None]:
    """A pool of single-threaded workers, one per torch CPU thread, or None (CUDA, one thread).

    The workers flush subnormal floats, as :func:`flushed_denormals` does for the calling thread
    (the flag is per thread; the workers end with the block).

    Small chunks through torch's own intra-op threads pay a synchronisation per operation, which
    on a shared, busy CPU cost more than the work (2 threads ran 6x slower than 1 on the 2-core
    test machine). Whole chunks on independent workers need no synchronisation (there, under load,
    they timed like one thread within noise). torch's thread count is restored afterwards; it is
    process-wide, so other torch work running meanwhile gets one thread.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads <= 1:
        yield None
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="cardioscar-cpu",
                                initializer=torch.set_flush_denormal, initargs=(True,)) as pool:
            yield pool
    finally:
        torch.set_num_threads(threads)
