"""POST /api/v1/quotes under gunicorn -w 2, side by side with a bare Flask constant endpoint.

Target (issue 14, was 0.5 in issue 3): quotes at no less than 0.65× the bare endpoint's requests
per second, the median of three rounds, each round loading both servers back to back.
BENCH_DATABASE_URL picks the database (default: a SQLite file).
"""

from __future__ import annotations

import os
import statistics

from .servers import gunicorn, service_env, worker_cpu_seconds, worker_rss_mb, wrk

QUOTE = {
    "product_code": "IVIG10-5-10-20",
    "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
    "duration_minutes": 180,
    "service_date": "2026-12-01",
    "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}],
}


ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))  # the figure is the median of 3


def _load(base: str, path: str, **request: object) -> tuple[dict[str, float], float]:
    """wrk's figures for 5 s of load, and the workers' CPU per request in µs."""
    before = worker_cpu_seconds(base)
    result = wrk(base + path, seconds=5, **request)  # type: ignore[arg-type]
    return result, (worker_cpu_seconds(base) - before) / max(result["requests"], 1) * 1e6


def main() -> None:
    """Both servers up at once; each round loads the bare endpoint and quotes back to back, in
    turn first (a machine whose speed drifts then favours neither), and the figure is the median
    of the rounds' ratios (a busy machine moves both alike). The workers' CPU per request is
    printed too: other processes disturb it far less than requests per second."""
    ratios, cpu_ratios = [], []
    with service_env(os.environ.get("BENCH_DATABASE_URL")) as (env, key):
        with gunicorn("bench.bare_app:app", env, "/constant") as bare, gunicorn("wsgi:app", env, "/healthz") as service:
            headers = {"Authorization": f"Bearer {key}"}
            wrk(bare + "/constant", seconds=2)  # warm-up
            wrk(service + "/api/v1/quotes", method="POST", body=QUOTE, headers=headers, seconds=2)
            warm = worker_rss_mb(service)
            for round_ in range(1, ROUNDS + 1):
                loads = {
                    "bare": lambda: _load(bare, "/constant", method="POST", body={"x": 1}),
                    "quotes": lambda: _load(service, "/api/v1/quotes", method="POST", body=QUOTE, headers=headers),
                }
                order = ("bare", "quotes") if round_ % 2 else ("quotes", "bare")
                results = {name: loads[name]() for name in order}
                (baseline, bare_cpu), (quotes, quote_cpu) = results["bare"], results["quotes"]
                ratios.append(quotes["rps"] / baseline["rps"])
                cpu_ratios.append(bare_cpu / quote_cpu)
                print(f"round {round_}: bare Flask constant JSON {baseline['rps']:8,.0f} req/s  p99 "
                      f"{baseline['p99_ms']:.1f} ms  {bare_cpu:4.0f} µs CPU;  POST /api/v1/quotes "
                      f"{quotes['rps']:8,.0f} req/s  p99 {quotes['p99_ms']:.1f} ms  {quote_cpu:4.0f} µs CPU "
                      f"(errors: {quotes['errors']});  ratio {ratios[-1]:.2f}")
            loaded = worker_rss_mb(service)
    print(f"ratio quotes / bare, median of {ROUNDS}: {statistics.median(ratios):.2f}  (target ≥ 0.65)")
    print(f"worker CPU per request, bare / quotes, median of {ROUNDS}: {statistics.median(cpu_ratios):.2f}")
    print(f"worker memory after warm-up {', '.join(f'{m:.0f}' for m in warm)} MB; after the rounds "
          f"{', '.join(f'{m:.0f}' for m in loaded)} MB  (target < 150 MB, no growth)")
