"""POST /api/v1/quotes under gunicorn -w 2, side by side with a bare Flask constant endpoint.

Target (issue 3): quotes at no less than half the bare endpoint's requests per second.
BENCH_DATABASE_URL picks the database (default: a SQLite file).
"""

from __future__ import annotations

import os

from .servers import gunicorn, service_env, worker_rss_mb, wrk

QUOTE = {
    "product_code": "IVIG10-5-10-20",
    "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
    "duration_minutes": 180,
    "service_date": "2026-12-01",
    "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}],
}


def main() -> None:
    with service_env(os.environ.get("BENCH_DATABASE_URL")) as (env, key):
        with gunicorn("bench.bare_app:app", env, "/constant") as bare:
            wrk(bare + "/constant", seconds=2)  # warm-up
            baseline = wrk(bare + "/constant", method="POST", body={"x": 1})
        with gunicorn("wsgi:app", env, "/healthz") as service:
            headers = {"Authorization": f"Bearer {key}"}
            wrk(service + "/api/v1/quotes", method="POST", body=QUOTE, headers=headers, seconds=2)
            warm = worker_rss_mb(service)
            quotes = wrk(service + "/api/v1/quotes", method="POST", body=QUOTE, headers=headers)
            loaded = worker_rss_mb(service)
    ratio = quotes["rps"] / baseline["rps"]
    print(f"bare Flask constant JSON:   {baseline['rps']:8,.0f} req/s  p99 {baseline['p99_ms']:.1f} ms")
    print(f"POST /api/v1/quotes:        {quotes['rps']:8,.0f} req/s  p99 {quotes['p99_ms']:.1f} ms"
          f"  (errors: {quotes['errors']})")
    print(f"ratio quotes / bare:        {ratio:.2f}  (target ≥ 0.50)")
    print(f"worker memory after warm-up {', '.join(f'{m:.0f}' for m in warm)} MB; after {quotes['requests']:,} more "
          f"requests {', '.join(f'{m:.0f}' for m in loaded)} MB  (target < 150 MB, no growth)")
