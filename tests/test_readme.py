"""Every command and snippet in README.md runs here, as a newcomer would run it."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.server import free_port, wait_serving

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def shell_commands() -> list[str]:
    """The README's shell commands, except the grpcurl blocks (tests/integration/test_grpcurl.py runs those)."""
    return [line.strip() for block in blocks("sh") if not block.lstrip().startswith("grpcurl")
            for line in block.splitlines() if line.strip()]


def _stop_group(proc: subprocess.Popen, log: pathlib.Path, timeout: float = 60) -> None:
    """SIGTERM the command's whole process group (make and the server) and wait until all of it is gone.

    If it hangs, SIGQUIT makes the server print every thread's stack into the log, which the failure shows.
    """
    os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            proc.wait()
            return
        proc.poll()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGQUIT)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    pytest.fail(f"the server did not exit within {timeout:.0f} s of SIGTERM; its log ends:\n"
                + log.read_text()[-6000:])


def _run_python(code: str, cwd: pathlib.Path) -> str:
    script = cwd / "snippet.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_commands_are_the_ones_tested_here() -> None:
    assert shell_commands() == ["make run", "make test", ".venv/bin/otlp2parquet serve --listen 127.0.0.1:4319"]
    assert len(blocks("python")) == 2


def test_make_test_is_exactly_what_ci_runs() -> None:
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == ["make test"]


@pytest.mark.integration
def test_make_run_then_send_then_query(tmp_path: pathlib.Path) -> None:
    port = free_port()
    env = {**os.environ, "OTLP2PARQUET_BASE_PATH": str(tmp_path / "data"), "OTLP2PARQUET_LISTEN": f"127.0.0.1:{port}",
           "OTLP2PARQUET_METRICS_LISTEN": f"127.0.0.1:{free_port()}"}
    log = tmp_path / "make-run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["make", "-C", str(ROOT), "run"], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        wait_serving(f"127.0.0.1:{port}", proc, log, timeout=120)
        send, query = blocks("python")
        _run_python(send.replace("127.0.0.1:4317", f"127.0.0.1:{port}"), tmp_path)
    finally:
        _stop_group(proc, log)
    assert '"message": "stopped"' in log.read_text() and '"clean": true' in log.read_text()
    printed = _run_python(query, tmp_path)
    assert printed.startswith("10 spans\n")
    assert "[('checkout', 'GET /api/cart', 10, " in printed


@pytest.mark.integration
def test_the_collector_listen_command_serves(tmp_path: pathlib.Path) -> None:
    command = shell_commands()[2].split()
    port = free_port()
    command[command.index("--listen") + 1] = f"127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "OTLP2PARQUET_BASE_PATH": str(tmp_path / "data"),
                                     "OTLP2PARQUET_METRICS_LISTEN": f"127.0.0.1:{free_port()}"})
    try:
        wait_serving(f"127.0.0.1:{port}", proc, log, timeout=120)
        proc.send_signal(signal.SIGQUIT)  # an operator's "where is it stuck?": stacks in the log, still serving
        deadline = time.monotonic() + 10
        while "Current thread" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        wait_serving(f"127.0.0.1:{port}", proc, log)
    finally:
        _stop_group(proc, log)
    assert proc.returncode == 0
    assert 'File "' in log.read_text() and "in serve" in log.read_text()


def test_the_collector_snippet_points_at_the_sidecar_command() -> None:
    (snippet,) = blocks("yaml")
    assert "endpoint: 127.0.0.1:4319" in snippet and "--listen 127.0.0.1:4319" in shell_commands()[2]
    assert "tls: {insecure: true}" in snippet
    assert re.search(r"compression: (gzip|none)\b", snippet)
