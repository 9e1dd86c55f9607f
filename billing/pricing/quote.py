"""One infusion priced as two separate lines, and a course priced infusion by infusion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .catalogue import PRODUCT, SERVICE, PriceList, decimal_text
from .dose import Dose, dose_grams
from .errors import CurrencyMismatch, PricingError, UnknownProduct
from .exclusions import ExcludedItem, OtherItem, exclude
from .money import Money, total
from .service_fee import service_fee
from .tax import tax_amount
from .vials import Dispensed, VialCount, choose_vials, dispensed_vials


_NO_GRAMS, _ONE = Decimal(0), Decimal(1)


@dataclass(frozen=True, slots=True)
class InfusionRequest:
    product_code: str
    dose: Dose
    duration_minutes: int
    service_date: date
    other_items: tuple[OtherItem, ...] = ()
    # (grams, count) pairs the pharmacy reports it actually used; overrides the vial choice
    vials_dispensed: tuple[tuple[Decimal, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class Line:
    category: str
    description: str
    quantity: Decimal
    unit: str
    unit_amount: int | None
    amount: int
    tax_rate: Decimal
    tax_label: str
    tax_amount: int
    # product line only
    dose_grams: Decimal | None = None
    waste_grams: Decimal | None = None
    vials: tuple[VialCount, ...] = ()
    # service line only
    duration_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    price_list: PriceList
    currency: str
    service_date: date
    lines: tuple[Line, ...]
    excluded_items: tuple[ExcludedItem, ...]
    statement: str
    subtotal: Money
    tax: Money
    total: Money

    def line(self, category: str) -> Line | None:
        for line in self.lines:
            if line.category == category:
                return line
        return None


@dataclass(frozen=True, slots=True)
class CourseQuote:
    infusions: tuple[Quote, ...]
    currency: str
    subtotal: Money
    tax: Money
    total: Money
    estimate: bool = True


def _product_line(price_list: PriceList, request: InfusionRequest) -> Line:
    product = price_list.product(request.product_code)
    if product is None:
        codes = ", ".join(p.code for p in price_list.products)
        raise UnknownProduct(
            f"No product {request.product_code} on the price list in effect on "
            f"{request.service_date.isoformat()} (products: {codes}).",
            "product_code",
        )
    grams = dose_grams(request.dose)
    dispensed: Dispensed
    if request.vials_dispensed is not None:
        dispensed = dispensed_vials(product, list(request.vials_dispensed))
    else:
        dispensed = choose_vials(product, grams)
    rate = price_list.tax[PRODUCT]
    quantity_text = decimal_text(dispensed.grams)
    count = dispensed.vial_count
    return Line(
        category=PRODUCT,
        description=f"{product.name}: {quantity_text} g in {count} vial{'s' if count != 1 else ''}",
        quantity=dispensed.grams,
        unit="g",
        unit_amount=product.gram_amount if product.pricing == "per_gram" else None,
        amount=dispensed.amount,
        tax_rate=rate.rate,
        tax_label=rate.label,
        tax_amount=tax_amount(dispensed.amount, rate),
        dose_grams=grams,
        waste_grams=max(dispensed.grams - grams, _NO_GRAMS),
        vials=dispensed.vials,
    )


def _service_line(price_list: PriceList, request: InfusionRequest) -> Line:
    amount = service_fee(price_list.service, request.duration_minutes)
    rate = price_list.tax[SERVICE]
    return Line(
        category=SERVICE,
        description=f"Infusion service: {request.duration_minutes} minutes",
        quantity=_ONE,
        unit="session",
        unit_amount=amount,
        amount=amount,
        tax_rate=rate.rate,
        tax_label=rate.label,
        tax_amount=tax_amount(amount, rate),
        duration_minutes=request.duration_minutes,
    )


def price_infusion(
    price_list: PriceList, request: InfusionRequest, *, include_service: bool = True
) -> Quote:
    """Price one infusion. The product and the service are always two separate lines.

    `include_service=False` prices the product alone (a cancellation after the product
    was prepared).
    """
    lines = [_product_line(price_list, request)]
    if include_service:
        lines.append(_service_line(price_list, request))
    currency = price_list.currency  # every line is in it: one price list, one currency
    subtotal = Money(sum(line.amount for line in lines), currency)
    tax = Money(sum(line.tax_amount for line in lines), currency)
    return Quote(
        price_list=price_list,
        currency=currency,
        service_date=request.service_date,
        lines=tuple(lines),
        excluded_items=exclude(request.other_items),
        statement=price_list.statement,
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
    )


def price_course(priced: list[tuple[PriceList, InfusionRequest]]) -> CourseQuote:
    """A costed treatment plan: each infusion at the price list in effect on its own date."""
    quotes: list[Quote] = []
    for i, (price_list, request) in enumerate(priced):
        try:
            quotes.append(price_infusion(price_list, request))
        except PricingError as error:
            raise error.at(f"course.{i}")
    currency = quotes[0].currency
    for i, quote in enumerate(quotes):
        if quote.currency != currency:
            raise CurrencyMismatch(
                f"Infusion {i + 1} is priced in {quote.currency}, the first in {currency}; "
                "one plan takes one currency.",
                f"course.{i}.service_date",
            )
    subtotal = total([q.subtotal for q in quotes], currency)
    tax = total([q.tax for q in quotes], currency)
    return CourseQuote(tuple(quotes), currency, subtotal, tax, subtotal + tax)
