"""A real local FHIR R4 server for the sandbox and the end-to-end tests: sekmet-fhir, in its own virtual environment.

sekmet-fhir (PyPI, Apache-2.0) is a FastAPI FHIR R4 server backed by SQLite: type-level search with token
(``system|code``, comma OR), reference, date (``ge``...) parameters, ``_count``/``_offset`` paging with
``Bundle.link[next]``, transaction and batch Bundles, and static bearer-token authentication. Its dependencies
(FastAPI, uvicorn, its own fhir.resources range...) must not mix with the service's pinned ones, so it lives in
``.venv-fhir/`` beside the project, created by :func:`ensure_fhir_venv` (idempotent: only when missing or when
the pins in ``fhir-server-constraints.txt`` changed) and run as a child process by :class:`LocalFhirServer`.

What sekmet-fhir 0.1.1 cannot do that the service's prefetch templates ask for (see docs in README "Try it"):
``BodyStructure`` has no search parameters there, so ``BodyStructure?patient=X`` ignores ``patient`` (with an
OperationOutcome warning entry) and returns every patient's BodyStructures; the service keeps only the ones of
the patient in context (``cds_service.prefetch``).
"""
from __future__ import annotations

import atexit
import hashlib
import os
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Callable

import requests

SEKMET_REQUIREMENT = "sekmet-fhir==0.1.1"
CONSTRAINTS = Path(__file__).with_name("fhir-server-constraints.txt")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 900
LOCK_TIMEOUT_S = 960


class FhirServerError(RuntimeError):
    """The local FHIR server could not be installed or started; the message says why and what to do."""


def default_venv_dir() -> Path:
    """``.venv-fhir`` in the project checkout (or the current directory when installed elsewhere)."""
    env = os.environ.get("REMISSION_CDS_FHIR_VENV")
    if env:
        return Path(env)
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / ".venv-fhir"


def _bin(venv_dir: Path, name: str) -> Path:
    return venv_dir / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def _wanted_stamp() -> str:
    pins = CONSTRAINTS.read_text(encoding="utf-8") if CONSTRAINTS.exists() else ""
    return hashlib.sha256(f"{SEKMET_REQUIREMENT}\n{pins}".encode()).hexdigest()


def _locked(lock_path: Path, timeout_s: float):
    """An exclusive lock file (two test runs in one checkout must not install at the same time); bounded wait."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as fh:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: no lock, single user
                yield
                return
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise FhirServerError(f"timed out after {timeout_s:.0f} s waiting for {lock_path} "
                                              "(another installation of the FHIR server is running)") from None
                    time.sleep(0.5)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    return cm()


def ensure_fhir_venv(venv_dir: Path | None = None, *, log: Callable[[str], None] | None = None) -> Path:
    """Create ``.venv-fhir`` and pip-install the pinned sekmet-fhir when needed; returns the venv's python.

    Idempotent: a stamp file records what was installed (the requirement and the constraints file), so later
    calls return at once. Raises :class:`FhirServerError` with pip's own words when the installation fails.
    """
    venv_dir = Path(venv_dir or default_venv_dir())
    python = _bin(venv_dir, "python")
    stamp = venv_dir / ".remission-cds-installed"
    want = _wanted_stamp()
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == want:
        return python
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    with _locked(venv_dir.parent / f"{venv_dir.name}.lock", LOCK_TIMEOUT_S):
        if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == want:
            return python  # another process installed it while this one waited
        if not python.exists():
            say(f"remission-cds: creating {venv_dir} for the local FHIR server ({SEKMET_REQUIREMENT})")
            venv.EnvBuilder(with_pip=True, clear=False, symlinks=os.name != "nt").create(venv_dir)
        say(f"remission-cds: installing {SEKMET_REQUIREMENT} into {venv_dir} (first run only)")
        cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
               SEKMET_REQUIREMENT]
        if CONSTRAINTS.exists():
            cmd += ["--constraint", str(CONSTRAINTS)]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
                                                                   "PIP_REQUIRE_VIRTUALENV")}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            raise FhirServerError(f"installing {SEKMET_REQUIREMENT} took more than {INSTALL_TIMEOUT_S} s; "
                                  "is PyPI reachable?") from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise FhirServerError(f"pip could not install {SEKMET_REQUIREMENT} into {venv_dir} "
                                  f"(exit {proc.returncode}):\n{tail}")
        check = subprocess.run([str(python), "-c", "import sekmet.main, uvicorn"], capture_output=True, text=True,
                               timeout=120, env=env)
        if check.returncode != 0:
            raise FhirServerError(f"{SEKMET_REQUIREMENT} installed but does not import:\n{check.stderr[-2000:]}")
        stamp.write_text(want + "\n", encoding="utf-8")
    return python


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalFhirServer:
    """sekmet-fhir on 127.0.0.1 (a free port unless one is given), SQLite in ``data_dir``; start/stop, or ``with``.

    ``tokens``: None = open server (no authentication, as the CDS Hooks Sandbox needs); a list = only requests
    with ``Authorization: Bearer <one of them>`` are answered, others get 401.
    """

    def __init__(self, data_dir: str | Path, *, port: int = 0, tokens: list[str] | None = None,
                 venv_dir: Path | None = None, host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the local FHIR server binds to loopback only")
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port
        self.tokens = tokens
        self.venv_dir = venv_dir
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/fhir"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "fhir-server.log"

    def _write_settings(self) -> Path:
        import yaml

        auth = {"types": ["bearer"], "tokens": list(self.tokens)} if self.tokens is not None else {"types": ["none"]}
        settings = {
            "base_url": self.base_url, "host": self.host, "port": self.port,
            "data_dir": str(self.data_dir), "db_path": str(self.data_dir / "fhir.sqlite3"),
            "own_private_key_path": str(self.data_dir / "keys" / "sekmet_private.pem"),
            "software_name": "remission-cds sandbox FHIR server (sekmet-fhir)",
            "server_auth": auth,
            "validation": {"inbound": "strict"},   # R4 structural validation of every write (fhir.resources R4B)
            "simulator": {"enabled": False},        # no simulated pharmacy/lab reacting to MedicationRequests
            "log_inbound": False,                   # no traffic log: it would store patient data
        }
        path = self.data_dir / "sekmet-settings.yaml"
        path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        return path

    def start(self, timeout_s: float = 60.0) -> "LocalFhirServer":
        if self.proc is not None and self.proc.poll() is None:
            return self
        python = ensure_fhir_venv(self.venv_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):   # a port picked free can be taken before the child binds it: retry, bounded
            if not self.port or attempt:
                self.port = free_port(self.host)
            settings = self._write_settings()
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
                   and not k.startswith("SEKMET_")}
            env["SEKMET_CONFIG"] = str(settings)
            self._log_file = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [str(python), "-m", "uvicorn", "sekmet.main:app_factory", "--factory", "--host", self.host,
                 "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
                cwd=self.data_dir, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)   # Ctrl-C reaches the parent, which stops it
            atexit.register(self.stop)
            if self._wait_ready(timeout_s):
                return self
            exited = self.proc.poll() is not None
            self.stop()
            if not exited:
                break
        tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:] if self.log_path.exists() else ""
        raise FhirServerError(f"the local FHIR server did not become ready on {self.base_url} within "
                              f"{timeout_s:.0f} s; its log ({self.log_path}):\n{tail}")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        session = requests.Session()
        session.trust_env = False
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                try:
                    if session.get(f"{self.base_url}/metadata", timeout=2).status_code == 200:
                        return True
                except requests.RequestException:
                    pass
                time.sleep(0.2)
        finally:
            session.close()
        return False

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "LocalFhirServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
