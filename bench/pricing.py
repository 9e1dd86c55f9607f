"""In-process quote throughput on one core: three vial sizes, doses up to 200 g.

Target (issue 3): at least 20,000 single-infusion quotes per second.
"""

from __future__ import annotations

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
    started = time.perf_counter()
    for _ in range(1000):
        choose_vials(one_gram, Decimal(200))
    warm = (time.perf_counter() - started) / 1000
    print(f"200 g with 1 g vials: first call {cold * 1000:.2f} ms (builds the table), "
          f"then {warm * 1e6:.0f} µs per call")
