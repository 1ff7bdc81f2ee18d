"""gunicorn settings for remission-cds (sync workers; see docs/deploy.md for sizing).

Environment: PORT (8080), WEB_CONCURRENCY (workers; default 2 x cores + 1, capped at 8),
REMISSION_CDS_HOOK_DEADLINE_S is the FHIR deadline per hook call; the worker timeout leaves room for it.
"""
import multiprocessing
import os
import shutil

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}" if os.environ.get("BIND_ALL", "1") == "1" else \
    f"127.0.0.1:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
worker_class = "sync"          # CPU-bound JSON work; FHIR fetches are bounded by the hook deadline
preload_app = True             # load code, UCUM tables and schedules once, share pages across workers
timeout = 30                   # far above the 2 s hook deadline; a stuck worker is recycled
graceful_timeout = 20
keepalive = 5
max_requests = 5000            # recycle workers now and then (bounded memory)
max_requests_jitter = 500
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Access log without PHI: method, path (no query string), status, size, duration; never headers or bodies.
accesslog = "-"
access_log_format = '{"remote":"%(h)s","method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":%(B)s,"ms":%(M)s}'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")


# Fresh Prometheus multiprocess directory at each start. This runs when gunicorn reads this file, before the
# app is preloaded (the metrics module opens its files at import).
_prom = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _prom:
    shutil.rmtree(_prom, ignore_errors=True)
    os.makedirs(_prom, exist_ok=True)


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
