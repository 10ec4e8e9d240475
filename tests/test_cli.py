"""The serve command's stop-signal wait."""

from __future__ import annotations

import gc
import os
import signal
import stat
from collections.abc import Iterator

import pytest

from otlp2parquet.cli import _stop_signals


@pytest.fixture
def restored_signals() -> Iterator[None]:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    signal.set_wakeup_fd(-1)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def test_the_wake_up_socket_stays_open_while_the_server_waits(restored_signals: None) -> None:
    """A closed wake-up fd made the wait spin on recv() and let signals write into whatever reused the number
    (a worker pool's pipe, once: the server then hung at exit)."""
    wait = _stop_signals()
    gc.collect()
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    assert stat.S_ISSOCK(os.fstat(fd).st_mode)
    os.kill(os.getpid(), signal.SIGTERM)
    assert wait() == signal.SIGTERM
