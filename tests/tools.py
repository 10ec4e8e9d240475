"""The external binaries the tests run (fetched by `make tools` into .tools/): never skipped silently."""

from __future__ import annotations

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tool(name: str) -> pathlib.Path:
    path = ROOT / ".tools" / name
    assert path.exists() and os.access(path, os.X_OK), \
        f"{path} is missing: `make tools` fetches it (make test does that first)"
    return path
