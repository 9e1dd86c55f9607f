"""This checkout beside an older one, back to back in one run: draft invoice creation, signed
booking events and quotes, each under gunicorn -w 2 on PostgreSQL, with a bare Flask endpoint
as the yardstick for quotes.

The older checkout is a git worktree of the commit to compare with, sharing this virtualenv:

    git worktree add /tmp/bench-base <commit> && ln -s "$PWD/.venv" /tmp/bench-base/.venv
    BENCH_BASE=/tmp/bench-base .venv/bin/python -m bench compare
    git worktree remove --force /tmp/bench-base

BENCH_NEW names the checkout taken as new (default this one: set it to a worktree of the old
commit with only the changes being measured, when others' unfinished work is in this tree).
Each round starts both services in turn (the order swaps every round) on fresh databases of
their own (BENCH_DATABASE_NAME, suffixed _old and _new), and the figures compared are the
ratios within a round: the machines here are too noisy for anything else.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from billing.webhooks import sign

from .booking import booked_events
from .http_quotes import QUOTE
from .invoices import BODY
from .pg import fresh_database
from .servers import ROOT, gunicorn, post_concurrently, service_env, worker_cpu_seconds, wrk

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
INVOICES = 1500
EVENTS = 1500
WARM_UP = 100
CLIENTS = 8
SECRET = "whsec_bench_compare"


def _invoice_bodies(count: int, offset: int) -> list[bytes]:
    return [json.dumps({**BODY, "patient": {"id": f"pt_{offset + i}", "name": "Bench Patient"}}).encode()
            for i in range(count)]


def _event_bodies(count: int, offset: int) -> list[bytes]:
    return booked_events(count, "compare", offset)


def _post_all(base: str, path: str, bodies: list[bytes], headers_for) -> tuple[float, float, float]:
    """(requests per second, p99 ms, the workers' CPU µs per request), every answer checked."""
    cpu = worker_cpu_seconds(base)
    seconds, statuses, latencies = post_concurrently(base, [(path, b, headers_for(b)) for b in bodies], CLIENTS)
    cpu = worker_cpu_seconds(base) - cpu
    bad = [s for s in statuses if s not in (200, 201)]
    if bad:
        raise SystemExit(f"{path}: {len(bad)} answers were not 200/201 (first {bad[0]})")
    latencies.sort()
    return len(bodies) / seconds, latencies[int(len(latencies) * 0.99)] * 1000, cpu / len(bodies) * 1e6


def run_service(root: Path, database: str) -> dict[str, float]:
    url = fresh_database(database)
    with service_env(url, root=root) as (env, key):
        env = {**env, "BOOKING_WEBHOOK_SECRET": SECRET}
        with gunicorn("wsgi:app", env, "/healthz", root=root) as base:
            api = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

            def signed(body: bytes) -> dict[str, str]:
                return {"Content-Type": "application/json", "Booking-Signature": sign(SECRET, body)}

            _post_all(base, "/api/v1/invoices", _invoice_bodies(WARM_UP, 10**6), lambda b: api)
            _post_all(base, "/api/v1/webhooks/booking", _event_bodies(WARM_UP, 10**6), signed)
            wrk(base + "/api/v1/quotes", method="POST", body=QUOTE, headers={"Authorization": api["Authorization"]},
                seconds=1)
            invoices, invoices_p99, invoices_cpu = _post_all(base, "/api/v1/invoices", _invoice_bodies(INVOICES, 0),
                                                             lambda b: api)
            events, events_p99, events_cpu = _post_all(base, "/api/v1/webhooks/booking", _event_bodies(EVENTS, 0),
                                                       signed)
            cpu = worker_cpu_seconds(base)
            quotes = wrk(base + "/api/v1/quotes", method="POST", body=QUOTE,
                         headers={"Authorization": api["Authorization"]}, seconds=4)
            quotes_cpu = (worker_cpu_seconds(base) - cpu) / quotes["requests"] * 1e6
    if quotes["errors"]:
        raise SystemExit(f"quotes: {quotes['errors']} errors")
    return {"invoices": invoices, "invoices_p99": invoices_p99, "invoices_cpu": invoices_cpu,
            "events": events, "events_p99": events_p99, "events_cpu": events_cpu,
            "quotes": quotes["rps"], "quotes_cpu": quotes_cpu}


def bare_rps() -> float:
    with service_env(None) as (env, _key):
        with gunicorn("bench.bare_app:app", env, "/constant") as bare:
            wrk(bare + "/constant", seconds=1)
            return wrk(bare + "/constant", method="POST", body={"x": 1}, seconds=4)["rps"]


def main() -> None:
    base = os.environ.get("BENCH_BASE")
    if not base or not (Path(base) / "wsgi.py").exists():
        print("skipped: BENCH_BASE must name a checkout of the commit to compare with (see bench/compare.py)")
        return
    name = os.environ.get("BENCH_DATABASE_NAME", "billing_bench")
    ratios: dict[str, list[float]] = {"invoices": [], "events": [], "quotes": []}
    cpu_ratios: dict[str, list[float]] = {"invoices": [], "events": [], "quotes": []}
    for round_ in range(1, ROUNDS + 1):
        order = [("old", Path(base)), ("new", Path(os.environ.get("BENCH_NEW") or ROOT))]
        if round_ % 2 == 0:
            order.reverse()
        results = {label: run_service(root, f"{name}_{label}") for label, root in order}
        bare = bare_rps()
        old, new = results["old"], results["new"]
        for what in ratios:
            ratios[what].append(new[what] / old[what])
            cpu_ratios[what].append(old[f"{what}_cpu"] / new[f"{what}_cpu"])
        print(f"round {round_} (first: {order[0][0]}):")
        print(f"  POST /api/v1/invoices, {CLIENTS} clients:   old {old['invoices']:6,.0f}/s (p99 {old['invoices_p99']:.0f} ms)"
              f"  new {new['invoices']:6,.0f}/s (p99 {new['invoices_p99']:.0f} ms)  new/old {ratios['invoices'][-1]:.2f};"
              f" worker CPU per request old {old['invoices_cpu']:,.0f} µs, new {new['invoices_cpu']:,.0f} µs"
              f" (old/new {cpu_ratios['invoices'][-1]:.2f})")
        print(f"  signed booking events, {CLIENTS} clients:   old {old['events']:6,.0f}/s (p99 {old['events_p99']:.0f} ms)"
              f"  new {new['events']:6,.0f}/s (p99 {new['events_p99']:.0f} ms)  new/old {ratios['events'][-1]:.2f};"
              f" worker CPU per request old {old['events_cpu']:,.0f} µs, new {new['events_cpu']:,.0f} µs"
              f" (old/new {cpu_ratios['events'][-1]:.2f})")
        print(f"  POST /api/v1/quotes (wrk, PostgreSQL):    old {old['quotes']:6,.0f}/s  new {new['quotes']:6,.0f}/s"
              f"  new/old {ratios['quotes'][-1]:.2f};  bare Flask {bare:,.0f}/s: old {old['quotes'] / bare:.2f}×,"
              f" new {new['quotes'] / bare:.2f}×; worker CPU per request old {old['quotes_cpu']:,.0f} µs,"
              f" new {new['quotes_cpu']:,.0f} µs (old/new {cpu_ratios['quotes'][-1]:.2f})")
    print(f"median new/old over {ROUNDS} rounds: invoice creation {statistics.median(ratios['invoices']):.2f}, "
          f"booking events {statistics.median(ratios['events']):.2f}, quotes {statistics.median(ratios['quotes']):.2f}"
          "  (target ≥ 1.15 for invoices and events)")
    print(f"median old/new worker CPU per request: invoice creation {statistics.median(cpu_ratios['invoices']):.2f}, "
          f"booking events {statistics.median(cpu_ratios['events']):.2f}, "
          f"quotes {statistics.median(cpu_ratios['quotes']):.2f}  (above 1: the new code does less work a request)")


if __name__ == "__main__":
    main()
