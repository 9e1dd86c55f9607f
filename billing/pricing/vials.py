"""The whole vials to dispense: the cheapest combination that covers the dose.

Ties go to fewest grams, then fewest vials. Vial sizes become whole multiples of their
greatest common divisor, so the search is an exact dynamic programme over those units;
the table depends only on the catalogue, so it is built once per product and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from math import gcd

from .catalogue import Product, Vial
from .dose import MAX_DOSE_GRAMS
from .errors import DispensedOutOfRange, UnknownVialSize
from .money import round_half_up

_HUNDREDTHS = Decimal(100)  # vial sizes have at most two decimal places


@dataclass(frozen=True, slots=True)
class VialCount:
    vial: Vial
    count: int


@dataclass(frozen=True, slots=True)
class Dispensed:
    vials: tuple[VialCount, ...]  # largest vial first
    grams: Decimal
    amount: int  # the product line's amount, rounded once

    @property
    def vial_count(self) -> int:
        return sum(vc.count for vc in self.vials)


def _amount(product: Product, vials: tuple[VialCount, ...], grams: Decimal) -> int:
    if product.pricing == "per_gram":
        return round_half_up(grams * (product.gram_amount or 0))
    return sum(vc.count * (vc.vial.unit_amount or 0) for vc in vials)


class _CoverTable:
    """Cheapest (cost, count) to make exactly t units, for every t up to the largest dose."""

    def __init__(self, sizes: tuple[int, ...], costs: tuple[int, ...], limit: int) -> None:
        self.sizes = sizes
        # best[t] is None where no combination makes exactly t units.
        best: list[tuple[int, int] | None] = [None] * (limit + 1)
        last: list[int] = [-1] * (limit + 1)
        best[0] = (0, 0)
        for t in range(1, limit + 1):
            winner: tuple[int, int] | None = None
            choice = -1
            for i, size in enumerate(sizes):
                if size <= t:
                    previous = best[t - size]
                    if previous is None:
                        continue
                    candidate = (previous[0] + costs[i], previous[1] + 1)
                    if winner is None or candidate < winner:
                        winner, choice = candidate, i
            best[t] = winner
            last[t] = choice
        self.best = best
        self.last = last
        # choose_vials's answer for each target it has met (Dispensed values), by target.
        self.answers: dict[int, Dispensed] = {}

    def cover(self, target: int) -> tuple[int, list[int]]:
        """The units dispensed and how many of each size, for at least `target` units."""
        # A combination reaching target + largest size or more could drop a vial and still
        # cover the dose for no more money and fewer grams, so the optimum lies below that.
        top = min(target + max(self.sizes) - 1, len(self.best) - 1)
        key: tuple[int, int, int] | None = None
        units = -1
        for t in range(max(target, 1), top + 1):
            entry = self.best[t]
            if entry is None:
                continue
            candidate = (entry[0], t, entry[1])
            if key is None or candidate < key:
                key, units = candidate, t
        counts = [0] * len(self.sizes)
        t = units
        while t > 0:
            i = self.last[t]
            counts[i] += 1
            t -= self.sizes[i]
        return units, counts


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


_TABLES: dict[int, tuple[Product, tuple[int, _CoverTable]]] = {}
# The brands on the market step by 0.5 g at the finest (1 and 2.5 g vials): 400 targets up
# to 200 g. Sizes in hundredths of a gram with no common factor make 20,000. Past this many
# kept answers a product's others are worked out on each call, as before, so the kept answers
# of all 256 tables _TABLES holds stay within a few tens of MB, not hundreds.
_ANSWERS_PER_PRODUCT = 512


def _table(product: Product) -> tuple[int, _CoverTable]:
    """The product's table, remembered by the product object itself: a price list is parsed once
    and its products kept (price_lists), so this is a dict lookup, not a hash of the whole
    catalogue entry on every quote. An equal product parsed again builds its own."""
    known = _TABLES.get(id(product))
    if known is not None and known[0] is product:
        return known[1]
    if len(_TABLES) >= 256:
        _TABLES.clear()
    table = _build_table(product)
    _TABLES[id(product)] = (product, table)  # holding the product keeps its id from being reused
    return table


def _build_table(product: Product) -> tuple[int, _CoverTable]:
    hundredths = [int(v.grams * _HUNDREDTHS) for v in product.vials]
    unit_hundredths = 0
    for h in hundredths:
        unit_hundredths = gcd(unit_hundredths, h)
    sizes = tuple(h // unit_hundredths for h in hundredths)
    if product.pricing == "per_gram":
        costs = sizes  # the price is proportional to grams
    else:
        costs = tuple(v.unit_amount or 0 for v in product.vials)
    limit = _ceil_div(int(MAX_DOSE_GRAMS * _HUNDREDTHS), unit_hundredths) + max(sizes)
    return unit_hundredths, _CoverTable(sizes, costs, limit)


def choose_vials(product: Product, dose_grams: Decimal) -> Dispensed:
    """The cheapest whole vials covering `dose_grams` (at most MAX_DOSE_GRAMS)."""
    unit_hundredths, table = _table(product)
    # ceil(ceil(x) / n) == ceil(x / n) for a whole n, so this stays in exact integers.
    dose_hundredths = int((dose_grams * _HUNDREDTHS).to_integral_value(rounding=ROUND_CEILING))
    target = _ceil_div(dose_hundredths, unit_hundredths)
    # The answer depends on the target alone, and a product has few: doses round up to whole
    # units of its vials' common size (to 5 g, 40 targets up to 200 g, for 5/10/20 g vials).
    # So each target's answer, an immutable value, is worked out once per product and kept,
    # at most _ANSWERS_PER_PRODUCT of them.
    dispensed = table.answers.get(target)
    if dispensed is None:
        units, counts = table.cover(target)
        vials = tuple(VialCount(v, n) for v, n in zip(product.vials, counts) if n)
        grams = Decimal(units * unit_hundredths) / _HUNDREDTHS
        dispensed = Dispensed(vials, grams, _amount(product, vials, grams))
        if len(table.answers) < _ANSWERS_PER_PRODUCT:
            table.answers[target] = dispensed
    return dispensed


def dispensed_vials(product: Product, reported: list[tuple[Decimal, int]]) -> Dispensed:
    """The vials the pharmacy actually dispensed, priced from the catalogue."""
    counts: dict[Decimal, int] = {}
    for i, (grams, count) in enumerate(reported):
        vial = product.vial(grams)
        if vial is None:
            sizes = ", ".join(f"{v.grams.normalize():f} g" for v in product.vials)
            raise UnknownVialSize(
                f"{product.code} has no {grams.normalize():f} g vial (sizes: {sizes}).",
                f"vials_dispensed.{i}.grams",
            )
        counts[vial.grams] = counts.get(vial.grams, 0) + count
    vials = tuple(VialCount(v, counts[v.grams]) for v in product.vials if counts.get(v.grams))
    grams = sum((vc.vial.grams * vc.count for vc in vials), Decimal(0))
    if not vials:
        raise DispensedOutOfRange("The vials dispensed can't be an empty list; leave it out to bill the dose.",
                                  "vials_dispensed")
    if grams > MAX_DOSE_GRAMS:
        raise DispensedOutOfRange(f"The vials dispensed come to {grams.normalize():f} g; over "
                                  f"{MAX_DOSE_GRAMS} g in all is not accepted.", "vials_dispensed")
    return Dispensed(vials, grams, _amount(product, vials, grams))


def implausible_dispensed(product: Product, dose: Decimal, dispensed: Decimal) -> bool:
    """More was dispensed than the dose needs by more than the largest vial: no pharmacy
    opens a whole spare vial, so it is likely a mistake for staff to check."""
    largest = max(v.grams for v in product.vials)
    return dispensed - dose > largest
