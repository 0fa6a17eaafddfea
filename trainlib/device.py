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
