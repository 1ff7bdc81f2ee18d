"""A small closed-loop HTTP load driver: C threads POST the same body to a loopback server.

Every request opens a new connection (gunicorn's sync workers close it after each response anyway), so the
latency includes the loopback TCP connect, as the EHR's would. A cell stops by itself: after ``duration_s`` once
``min_requests`` have completed, and in any case after ``max_time_s`` or ``max_requests`` (whichever first).
Like wrk it is closed-loop, so the latencies do not correct for coordinated omission.
"""
from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"


@dataclass
class CellResult:
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str | None = None

    @property
    def count(self) -> int:
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds (q in 0..100); NaN with no samples."""
        if not self.latencies_s:
            return float("nan")
        xs = sorted(self.latencies_s)
        k = max(0, min(len(xs) - 1, int(round(q / 100.0 * len(xs) + 0.5)) - 1))
        return xs[k] * 1000.0


def post_once(port: int, path: str, body: bytes, timeout_s: float = 60.0) -> tuple[int, bytes]:
    """One POST to 127.0.0.1:port; (status, response body)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout_s)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def drive(port: int, path: str, body: bytes, *, concurrency: int, duration_s: float, min_requests: int = 0,
          max_requests: int = 100_000, max_time_s: float | None = None, timeout_s: float = 60.0,
          max_errors: int = 20) -> CellResult:
    """Run one load cell against 127.0.0.1:port and return the latencies of the 200 responses."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    max_time_s = max_time_s if max_time_s is not None else 3 * duration_s
    out = CellResult()
    lock = threading.Lock()
    started = time.perf_counter()
    soft_end = started + duration_s
    hard_end = started + max(duration_s, max_time_s)
    issued = 0
    last_done = started

    def may_start() -> bool:
        nonlocal issued
        with lock:
            now = time.perf_counter()
            if issued >= max_requests or out.errors >= max_errors or now >= hard_end:
                return False
            if now >= soft_end and issued >= min_requests:
                return False
            issued += 1
            return True

    def worker() -> None:
        nonlocal last_done
        while may_start():
            t0 = time.perf_counter()
            try:
                status, _ = post_once(port, path, body, timeout_s)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    out.errors += 1
                    out.first_error = out.first_error or f"{type(exc).__name__}: {exc}"
                continue
            t1 = time.perf_counter()
            with lock:
                out.statuses[status] = out.statuses.get(status, 0) + 1
                if status == 200:
                    out.latencies_s.append(t1 - t0)
                    last_done = max(last_done, t1)
                else:
                    out.errors += 1
                    out.first_error = out.first_error or f"HTTP {status}"

    threads = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max_time_s + timeout_s + 5)
    out.elapsed_s = last_done - started
    return out
