"""What the runs will train on, in words, for the dashboard's sidebar and the CLI.

    describe_device()      # 'cuda: NVIDIA H200' or 'cpu (2 cores)'
"""
from __future__ import annotations

import os

import torch


def describe_device() -> str:
    """The device 'auto' resolves to (see scenario.resolve_device), named for people."""
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0)
        return f"cuda: {name}" + (f" (x{count}; runs use the first)" if count > 1 else "")
    cores = os.cpu_count() or 1
    return f"cpu ({cores} core{'s' if cores != 1 else ''})"


def leave_cores_for_ui(cores: int = 1) -> int:
    """On a CPU-only machine, train with `cores` fewer threads than there are cores; returns the count.

    A dashboard's server and the browser drawing its charts share the machine with training.
    Torch's OpenMP threads spin-wait on each other, so one of them losing its core to the UI slows
    every step: on a 2-core machine with one core busy, two threads trained 2.4x slower than one.
    """
    if torch.cuda.is_available():
        return torch.get_num_threads()
    threads = max(1, (os.cpu_count() or 1) - cores)
    torch.set_num_threads(threads)
    return threads
