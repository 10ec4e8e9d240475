"""What the container image runs: a wheel built from the repository, installed into a fresh virtual
environment, serving with `otlp2parquet serve` (no Docker engine runs here, so this stands in for the image)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import venv

import pytest

from tests.integration.server import clean_environ, free_port, wait_serving
from tests.tools import ROOT

pytestmark = pytest.mark.integration


def test_dockerfile_installs_only_the_wheel_and_runs_serve() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    assert 'ENTRYPOINT ["otlp2parquet"]' in dockerfile and 'CMD ["serve"]' in dockerfile
    assert "VOLUME /data" in dockerfile and "OTLP2PARQUET_BASE_PATH=/data" in dockerfile
    assert "[test]" not in dockerfile
    assert "COPY pyproject.toml setup.py" in dockerfile  # the native parts compile in the build stage
    assert "gcc" in dockerfile and "g++" in dockerfile


def test_a_wheel_from_the_repository_installs_fresh_and_serves(tmp_path: pathlib.Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("otlp2parquet-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)],
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr
    listing = subprocess.run([str(python), "-m", "pip", "show", "-f", "otlp2parquet"], capture_output=True, text=True)
    assert "otlp2parquet/convert/traces.py" in listing.stdout
    assert re.search(r"otlp2parquet/convert/_fastpb\.cpython-.*\.so", listing.stdout)  # compiled into the wheel
    assert re.search(r"otlp2parquet/writer/_encode\.cpython-.*\.so", listing.stdout)
    assert "tests/" not in listing.stdout and "bench/" not in listing.stdout
    assert "pytest" not in subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True).stdout

    environ = clean_environ()
    environ["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{environ['PATH']}"
    port = free_port()
    data = tmp_path / "data"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(env_dir / "bin" / "otlp2parquet"), "serve"], cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**environ, "OTLP2PARQUET_BASE_PATH": str(data),
                                 "OTLP2PARQUET_LISTEN": f"127.0.0.1:{port}",
                                 "OTLP2PARQUET_METRICS_LISTEN": f"127.0.0.1:{free_port()}"})
    try:
        wait_serving(f"127.0.0.1:{port}", proc, tmp_path / "serve.log", timeout=120)
    finally:
        proc.terminate()
        code = proc.wait(60)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert (data / "catalog.db").exists() and (data / "wal").is_dir()
