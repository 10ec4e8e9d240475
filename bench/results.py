"""Appending a measured table to bench/RESULTS.md, always with the command and the machine that produced it."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import platform
import shlex
import subprocess
import sys

RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")
ROOT = RESULTS.parents[1]


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def command_line(module: str) -> str:
    """The command that reproduces this run: `python -m module` and its arguments, without --write-results."""
    return " ".join(["python -m", module, *(shlex.quote(a) for a in sys.argv[1:] if a != "--write-results")])


def code_version() -> str:
    """The commit the measured code is at, and whether files git tracks differ from it: the VM's speed drifts, so
    only runs of two versions alternated within minutes compare them, and each entry must say which it ran."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ":(top,exclude)bench/RESULTS.md")
        return commit + (" with uncommitted changes" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def append(title: str, command: str, setup: str, table: list[str]) -> None:
    machine = f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}"
    with RESULTS.open("a") as out:
        out.write(f"\n## {title}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n- command: `{command}`\n"
                  f"- code: {code_version()}\n- machine: {machine}\n- setup: {setup}\n\n" + "\n".join(table) + "\n")


def report(table: list[str], write: bool, title: str, module: str, setup: str) -> None:
    """Print a measured table and, when asked (`--write-results`), append it with the command of `module`."""
    print("\n".join(table))
    if write:
        append(title, command_line(module), setup, table)
