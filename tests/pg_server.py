"""A throw-away PostgreSQL server for the tests: initdb into a temp dir, start on a free loopback port, stop.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` system user (commands run
through ``runuser``); otherwise it runs as the current user. The cluster listens on 127.0.0.1 and on a unix socket
in its own directory, with password (SCRAM) authentication over TCP, so the tests use a URL with a password.
Every wait is bounded; a server that cannot start raises ``PostgresUnavailable`` with the reason and the log tail.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PASSWORD = "pg-test-Secr3t"  # a throw-away cluster on loopback; the tests check it never reaches a log
USER = "postgres"
DATABASE = "remission_test"


class PostgresUnavailable(RuntimeError):
    pass


def _find_bin(name: str) -> str | None:
    for cand in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.tmp: Path | None = None
        self.port: int | None = None
        self._pg_ctl: str | None = None

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        cmd = (["runuser", "-u", "postgres", "--", *args] if self.as_root else args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"})

    def _log_tail(self) -> str:
        log = self.tmp / "server.log" if self.tmp else None
        if log and log.exists():
            return log.read_text(errors="replace")[-2000:]
        return ""

    def start(self) -> str:
        initdb, pg_ctl = _find_bin("initdb"), _find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) were not found; install "
                                      "Debian's postgresql package (the CI image has PostgreSQL 15)")
        if self.as_root:
            try:
                import pwd

                pg_user = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no 'postgres' system user to run "
                                          "PostgreSQL as") from None
        self._pg_ctl = pg_ctl
        self.tmp = Path(tempfile.mkdtemp(prefix="remission-pg-"))
        data, sock = self.tmp / "data", self.tmp / "sock"
        sock.mkdir()
        pwfile = self.tmp / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_root:
            for p in (self.tmp, sock, pwfile):
                os.chown(p, pg_user.pw_uid, pg_user.pw_gid)
        os.chmod(self.tmp, 0o700)
        os.chmod(pwfile, 0o600)
        try:
            res = self._run([initdb, "-D", str(data), "-U", USER, "--pwfile", str(pwfile), "--auth-local=trust",
                             "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions", "--no-sync"],
                            timeout=120)
        except subprocess.TimeoutExpired:
            raise PostgresUnavailable("initdb did not finish within 120 s") from None
        pwfile.unlink()
        if res.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({res.returncode}): {(res.stderr or res.stdout)[-1500:]}")
        last = ""
        for _ in range(3):  # a free port can be taken between choosing it and binding it: try another
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={sock} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
                    "-c shared_buffers=16MB -c dynamic_shared_memory_type=mmap")
            try:
                res = self._run([pg_ctl, "-D", str(data), "-l", str(self.tmp / "server.log"), "-o", opts, "-w",
                                 "-t", "60", "start"], timeout=90)
            except subprocess.TimeoutExpired:
                res = None
            if res is not None and res.returncode == 0 and self._wait_ready(30):
                self._create_db()
                return self.url
            last = (res.stderr if res is not None else "pg_ctl start timed out") + self._log_tail()
            self.stop(remove=False)
        self.stop()
        raise PostgresUnavailable(f"PostgreSQL did not start: {last[-1500:]}")

    def _wait_ready(self, seconds: float) -> bool:
        import psycopg

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=3):
                    return True
            except psycopg.Error:
                time.sleep(0.2)
        return False

    def _create_db(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def fresh_database(self, name: str) -> str:
        """A new empty database on this server; its URL."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def url_for(self, database: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    @property
    def url(self) -> str:
        return self.url_for(DATABASE)

    def stop(self, remove: bool = True) -> None:
        if self.tmp is None:
            return
        data = self.tmp / "data"
        if self._pg_ctl and (data / "postmaster.pid").exists():
            try:
                self._run([self._pg_ctl, "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"], timeout=45)
            except subprocess.TimeoutExpired:
                pass
        if remove:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
