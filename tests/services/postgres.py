"""A throwaway PostgreSQL server from the Debian packages (`.tools/postgres`), on a free loopback port."""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import uuid

import sqlalchemy

from tests.integration.server import free_port
from tests.tools import tool


class Postgres:
    """initdb + pg_ctl in a temporary directory; as root, the server runs as the `postgres` user (it refuses root)."""

    def __init__(self) -> None:
        # The link's target, not `.tools/postgres` itself: the server user cannot pass through a checkout in a
        # private directory (`git clone . "$(mktemp -d)/p"`), where running the link failed with EACCES.
        self.bin = tool("postgres").resolve()
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and the server user must reach its data directory.
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="otlp2parquet-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200")

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([*self._as_user, str(self.bin / program), *args], capture_output=True, text=True,
                                cwd=self.root)
        log = self.log.read_text() if self.log.exists() else ""
        assert result.returncode == 0, f"{program} failed:\n{result.stdout}\n{result.stderr}\n{log}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh database for one test; returns its SQLAlchemy URL."""
        name = f"catalog_{uuid.uuid4().hex[:12]}"
        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
