"""Start the service (or the yardstick) under gunicorn on 127.0.0.1 and load it with wrk."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flask(env: dict[str, str], *args: str, root: Path = ROOT) -> str:
    result = subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=root, env=env,
                            capture_output=True, text=True, check=True)
    return result.stdout


@contextlib.contextmanager
def service_env(database_url: str | None = None, root: Path = ROOT) -> Iterator[tuple[dict[str, str], str]]:
    """A migrated, seeded database and an API key: (environment, key). `root`: the checkout
    whose code migrates and seeds (another one to compare with an older commit)."""
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        env = {**os.environ, "BILLING_INSTANCE_PATH": tmp}
        if database_url:
            env["DATABASE_URL"] = database_url
        _flask(env, "db", "upgrade", root=root)
        _flask(env, "billing", "seed-demo", root=root)
        key = _flask(env, "billing", "create-api-key", "bench", root=root).strip().splitlines()[-1]
        yield env, key


@contextlib.contextmanager
def gunicorn(app: str, env: dict[str, str], ready_path: str, workers: int = 2, root: Path = ROOT) -> Iterator[str]:
    """gunicorn -w `workers` sync on a free port, serving `app` from the checkout `root`."""
    port = free_port()
    log = open(Path(env.get("BILLING_INSTANCE_PATH", tempfile.gettempdir())) / f"gunicorn-{port}.log", "w")
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
         "--no-control-socket", "--log-level", "warning", app],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + ready_path, timeout=1)
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{app} did not start; see {log.name}")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wrk(url: str, *, method: str = "GET", body: object | None = None, headers: dict[str, str] | None = None,
        seconds: int = 8, connections: int = 16, threads: int = 2) -> dict[str, float]:
    """Requests per second and latency percentiles (ms) from wrk, which must be installed."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does this)")
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    for name, value in (headers or {}).items():
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    lines.append("""
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %.3f %.3f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.duration, 0, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end""")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines))
    try:
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) \d+ ([\d.]+) ([\d.]+)", out)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, errors, micros, p50, p99 = match.groups()
    return {"requests": int(requests), "errors": int(errors), "rps": int(requests) / (int(micros) / 1e6),
            "p50_ms": float(p50), "p99_ms": float(p99)}


def post_concurrently(base: str, requests: list[tuple[str, bytes, dict[str, str]]], clients: int
                      ) -> tuple[float, list[int], list[float]]:
    """`clients` threads on keep-alive connections POST every (path, body, headers) once, in
    order of the list; returns (seconds, statuses, latencies in seconds)."""
    import http.client
    import threading
    from urllib.parse import urlparse

    host = urlparse(base)
    queue = list(reversed(requests))
    lock = threading.Lock()
    statuses: list[int] = []
    latencies: list[float] = []

    def client() -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                path, body, headers = queue.pop()
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Content-Length": str(len(body)), **headers})
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                statuses.append(response.status)
                latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, statuses, latencies


def _gunicorn_processes(base: str) -> dict[int, tuple[int, float]]:
    """pid: (parent pid, resident MB) of every gunicorn process serving `base`."""
    port = base.rsplit(":", 1)[1]
    found: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "gunicorn" in cmdline and f"127.0.0.1:{port}" in cmdline:
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            found[int(entry.name)] = (int(fields["PPid"]), int(fields["VmRSS"].split()[0]) / 1024)
    return found


def worker_rss_mb(base: str) -> list[float]:
    """Resident memory (MB) of each gunicorn worker serving `base` (the master left out)."""
    found = _gunicorn_processes(base)
    return sorted(rss for ppid, rss in found.values() if ppid in found)


def worker_rss_by_pid(base: str) -> dict[int, float]:
    """Resident memory (MB) of each gunicorn worker serving `base`, by process id."""
    found = _gunicorn_processes(base)
    return {pid: rss for pid, (ppid, rss) in sorted(found.items()) if ppid in found}


def worker_cpu_seconds(base: str) -> float:
    """CPU time (user + system, seconds) the gunicorn workers serving `base` have used so far: read
    before and after a load, it gives the cost of a request in the service itself, which the
    other processes on a busy machine disturb far less than they disturb requests per second."""
    found = _gunicorn_processes(base)
    total = 0
    for pid, (ppid, _rss) in found.items():
        if ppid not in found:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")
