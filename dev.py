#!/usr/bin/env python3
"""Set-up and run on a fresh machine with only Python 3.11: `python3 dev.py run` or `python3 dev.py test`.

Creates .venv, installs the project with its pinned dependencies (again only when pyproject.toml changed),
then runs the service or the test suite. Extra arguments go to the command (e.g. `python3 dev.py test -k recist`).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"


def ensure_env() -> None:
    if sys.version_info < (3, 11):
        sys.exit("remission-cds needs Python 3.11 or newer")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text() == digest:
        return
    if not PY.exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("dev.py: installing remission-cds and its pinned dependencies", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[test]"],
                   cwd=ROOT, check=True)
    STAMP.write_text(digest)


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if cmd not in ("run", "test", "setup"):
        print(__doc__)
        return 2
    ensure_env()
    if cmd == "setup":
        return 0
    if cmd == "run":
        return subprocess.call([str(BIN / "remission-cds"), "serve", *rest], cwd=ROOT)
    return subprocess.call([str(PY), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
