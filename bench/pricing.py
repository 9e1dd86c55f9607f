"""In-process quote throughput on one core: three vial sizes, doses up to 200 g.

Target (issue 3): at least 20,000 single-infusion quotes per second.
"""

from __future__ import annotations

import gc
import random
import time
from datetime import date
from decimal import Decimal

from billing.pricing import (
    Dose, InfusionRequest, Product, Vial, choose_vials, price_infusion, price_list_from_document,
)
from billing.cli import DEMO_PRICE_LIST


def main() -> None:
    price_list = price_list_from_document(DEMO_PRICE_LIST, id="pl_bench", version=1)
    rng = random.Random(7)
    requests = [
        InfusionRequest(
            product_code=rng.choice(["IVIG10-5-10-20", "IVIG10-PER-GRAM"]),
            dose=Dose(grams=Decimal(rng.randint(10, 20000)) / 100),
            duration_minutes=rng.randint(60, 480),
            service_date=date(2026, 12, 1),
        )
        for _ in range(5000)
    ]
    for request in requests[:100]:  # warm the per-product vial tables
        price_infusion(price_list, request)
    rounds = 4
    started = time.perf_counter()
    for _ in range(rounds):
        for request in requests:
            price_infusion(price_list, request)
    elapsed = time.perf_counter() - started
    rate = rounds * len(requests) / elapsed
    print(f"single-infusion quotes, one core:  {rate:,.0f} per second  (target ≥ 20,000)")

    one_gram = Product("G1", "1 g vials", "per_vial", (Vial(Decimal(1), 5000),))
    started = time.perf_counter()
    choose_vials(one_gram, Decimal(200))
    cold = time.perf_counter() - started
    # Every other target once (the table searched for each), then all 200 again (each answer
    # kept per product since the first time). A full garbage collection first: one falling
    # inside these few milliseconds, over the heap `make bench` has imported, would be most of them.
    doses = [Decimal(g) for g in range(1, 200)]
    gc.collect()
    started = time.perf_counter()
    for dose in doses:
        choose_vials(one_gram, dose)
    first = (time.perf_counter() - started) / len(doses)
    started = time.perf_counter()
    for _ in range(5):
        for dose in doses:
            choose_vials(one_gram, dose)
    again = (time.perf_counter() - started) / (5 * len(doses))
    print(f"200 g with 1 g vials: first call {cold * 1000:.2f} ms (builds the table); each other dose "
          f"1–199 g the first time {first * 1e6:.0f} µs, asked again {again * 1e6:.1f} µs")
