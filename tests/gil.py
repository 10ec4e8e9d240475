"""Whether a native call lets the GIL go: the converters and the Parquet encoder must, or a second CPU idles."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def ran_alongside(call: Callable[[], object]) -> bool:
    """Did another thread run Python code while `call` ran? The switch interval is raised so that the main
    thread gives the GIL up only when it blocks or a native call lets it go: the other thread, woken as the call
    starts, can set its flag before the call returns only if the call let the GIL go."""
    flag: list[bool] = []
    armed, go = threading.Event(), threading.Event()

    def other() -> None:
        armed.set()
        go.wait()
        flag.append(True)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    thread = threading.Thread(target=other)
    try:
        thread.start()
        armed.wait()
        go.set()
        call()
        ran = bool(flag)  # the GIL has been ours since the call returned
    finally:
        sys.setswitchinterval(interval)
        go.set()
        thread.join()
    return ran
