"""Polling for a condition that another thread or process brings about."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout: float = 20, interval: float = 0.05) -> bool:
    """True as soon as `condition()` is; False if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def alive(pid: int) -> bool:
    """Running: a zombie waiting for whoever adopted it to reap it has exited."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
