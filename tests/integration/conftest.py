from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from tests.integration.server import SERVING, ServerProcess
from tests.services.postgres import Postgres
from tests.services.s3 import S3


@pytest.fixture
def start_server(tmp_path: pathlib.Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers on free ports; any still running at the end of the test is killed."""
    started: list[ServerProcess] = []

    def start(*args: str, base: pathlib.Path | None = None, env: dict[str, str] | None = None,
              health: int = SERVING) -> ServerProcess:
        server = ServerProcess(base or tmp_path / f"server{len(started)}", *args, env=env, health=health)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session; each test takes its own database."""
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """moto's S3 server for the session; each test takes its own bucket."""
    server = S3()
    yield server
    server.stop()
