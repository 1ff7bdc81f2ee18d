"""Start the service under real gunicorn (deploy/gunicorn.conf.py, loopback only) for a test, and stop it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """``with Gunicorn(tmp, workers=3, env={...}) as base:`` serves on http://127.0.0.1:<free port>; its output
    (access and error log) goes to ``tmp/gunicorn.log``."""

    def __init__(self, tmp: Path, *, workers: int = 3, env: dict[str, str] | None = None,
                 start_timeout_s: float = 60) -> None:
        self.tmp = Path(tmp)
        self.workers = workers
        self.extra_env = env or {}
        self.start_timeout_s = start_timeout_s
        self.log_path = self.tmp / "gunicorn.log"
        self.proc: subprocess.Popen | None = None
        self.base = ""

    def __enter__(self) -> str:
        port = free_port()
        env = {**os.environ, "PORT": str(port), "BIND_ALL": "0", "WEB_CONCURRENCY": str(self.workers),
               "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prom"), **self.extra_env}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(BIN / "gunicorn"), "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
                                      "cds_service:create_app()"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if requests.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return self.base
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"gunicorn did not become ready within {self.start_timeout_s} s:\n"
                           + self.log_path.read_text(errors="replace")[-3000:])

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
