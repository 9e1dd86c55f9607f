"""POST /api/v1/quotes under gunicorn -w 2, side by side with a bare Flask constant endpoint.

Target (issue 14, was 0.5 in issue 3): quotes at no less than 0.65× the bare endpoint's requests
per second, the median of three rounds, each round loading both servers back to back.
BENCH_DATABASE_URL picks the database (default: a SQLite file).
"""

from __future__ import annotations

import os
import statistics

from .servers import gunicorn, service_env, worker_rss_mb, wrk

QUOTE = {
    "product_code": "IVIG10-5-10-20",
    "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
    "duration_minutes": 180,
    "service_date": "2026-12-01",
    "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}],
}


ROUNDS = 3


def main() -> None:
    """Both servers up at once; each round loads the bare endpoint, then quotes, back to back,
    and the figure is the median of the rounds' ratios (a busy machine moves both alike)."""
    ratios = []
    with service_env(os.environ.get("BENCH_DATABASE_URL")) as (env, key):
        with gunicorn("bench.bare_app:app", env, "/constant") as bare, gunicorn("wsgi:app", env, "/healthz") as service:
            headers = {"Authorization": f"Bearer {key}"}
            wrk(bare + "/constant", seconds=2)  # warm-up
            wrk(service + "/api/v1/quotes", method="POST", body=QUOTE, headers=headers, seconds=2)
            warm = worker_rss_mb(service)
            for round_ in range(1, ROUNDS + 1):
                baseline = wrk(bare + "/constant", method="POST", body={"x": 1}, seconds=5)
                quotes = wrk(service + "/api/v1/quotes", method="POST", body=QUOTE, headers=headers, seconds=5)
                ratios.append(quotes["rps"] / baseline["rps"])
                print(f"round {round_}: bare Flask constant JSON {baseline['rps']:8,.0f} req/s  p99 "
                      f"{baseline['p99_ms']:.1f} ms;  POST /api/v1/quotes {quotes['rps']:8,.0f} req/s  p99 "
                      f"{quotes['p99_ms']:.1f} ms (errors: {quotes['errors']});  ratio {ratios[-1]:.2f}")
            loaded = worker_rss_mb(service)
    print(f"ratio quotes / bare, median of {ROUNDS}: {statistics.median(ratios):.2f}  (target ≥ 0.65)")
    print(f"worker memory after warm-up {', '.join(f'{m:.0f}' for m in warm)} MB; after the rounds "
          f"{', '.join(f'{m:.0f}' for m in loaded)} MB  (target < 150 MB, no growth)")
