"""The price list as values: products and their vials, service tiers, tax, and its rules.

`price_list_from_document` turns the stored JSON document (decimals as strings, amounts as
integer minor units) into frozen values, refusing any document that breaks a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from .errors import PriceListInvalid

PRODUCT = "immunoglobulin_product"
SERVICE = "infusion_service"
CATEGORIES = (PRODUCT, SERVICE)

DEFAULT_STATEMENT = (
    "Other fertility investigations, treatment or preservation services for either partner "
    "are not included in this charge."
)

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_VIAL_GRAMS = Decimal(100)
MAX_AMOUNT = 10**9  # £10 million in pence: far past any real price, well inside 64 bits


@dataclass(frozen=True, slots=True)
class Vial:
    grams: Decimal
    unit_amount: int | None  # None when the product is priced per gram


@dataclass(frozen=True, slots=True)
class Product:
    code: str
    name: str
    pricing: str  # "per_vial" | "per_gram"
    vials: tuple[Vial, ...]
    gram_amount: int | None = None

    def vial(self, grams: Decimal) -> Vial | None:
        for vial in self.vials:
            if vial.grams == grams:
                return vial
        return None


@dataclass(frozen=True, slots=True)
class ServiceTier:
    up_to_minutes: int
    amount: int


@dataclass(frozen=True, slots=True)
class ServiceFee:
    tiers: tuple[ServiceTier, ...]
    extra_per_30_minutes: int | None


@dataclass(frozen=True, slots=True)
class TaxRate:
    rate: Decimal  # a percentage: "20" is 20 %
    label: str


@dataclass(frozen=True, slots=True)
class PriceList:
    effective_from: date
    currency: str
    statement: str
    products: tuple[Product, ...]
    service: ServiceFee
    tax: Mapping[str, TaxRate] = field(hash=False, compare=False)
    charge_prepared_product: bool = True
    id: str | None = None
    version: int | None = None

    def product(self, code: str) -> Product | None:
        for product in self.products:
            if product.code == code:
                return product
        return None


def decimal_text(value: Decimal) -> str:
    """A decimal as the contract writes it: no exponent, no trailing zeros ("27.4", "30")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class _Errors:
    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.by_field.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise PriceListInvalid(self.by_field)


def _decimal(value: Any, path: str, errors: _Errors) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        errors.add(path, "Must be a decimal number written as a string, like \"12.5\".")
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        errors.add(path, "Not a decimal number.")
        return None
    if not number.is_finite():
        errors.add(path, "Not a finite number.")
        return None
    return number


def _amount(value: Any, path: str, errors: _Errors) -> int | None:
    if type(value) is not int:
        errors.add(path, "Must be a whole number of minor units (pence).")
        return None
    if value < 0 or value > MAX_AMOUNT:
        errors.add(path, f"Must be between 0 and {MAX_AMOUNT}.")
        return None
    return value


def _vials(raw: Any, path: str, pricing: str, errors: _Errors) -> tuple[Vial, ...]:
    if not isinstance(raw, list) or not raw:
        errors.add(path, "At least one vial size is required.")
        return ()
    vials: list[Vial] = []
    seen: set[Decimal] = set()
    for i, item in enumerate(raw):
        here = f"{path}.{i}"
        if not isinstance(item, Mapping):
            errors.add(here, "Must be an object with grams.")
            continue
        grams = _decimal(item.get("grams"), f"{here}.grams", errors)
        if grams is not None:
            if grams <= 0 or grams > MAX_VIAL_GRAMS:
                errors.add(f"{here}.grams", f"A vial holds more than 0 and at most {MAX_VIAL_GRAMS} g.")
                grams = None
            elif grams != grams.quantize(Decimal("0.01")):
                errors.add(f"{here}.grams", "Vial sizes have at most two decimal places.")
                grams = None
            elif grams in seen:
                errors.add(f"{here}.grams", f"The {decimal_text(grams)} g vial is listed twice.")
                grams = None
            else:
                seen.add(grams)
        unit_amount: int | None = None
        if pricing == "per_vial":
            unit_amount = _amount(item.get("unit_amount"), f"{here}.unit_amount", errors)
        elif item.get("unit_amount") is not None:
            errors.add(f"{here}.unit_amount", "A product priced per gram has no price per vial.")
        if grams is not None:
            vials.append(Vial(grams, unit_amount))
    # Largest first: the order the vial search tries them and the order lines list them.
    return tuple(sorted(vials, key=lambda v: v.grams, reverse=True))


def _products(raw: Any, errors: _Errors) -> tuple[Product, ...]:
    if not isinstance(raw, list) or not raw:
        errors.add("products", "At least one product is required.")
        return ()
    products: list[Product] = []
    codes: set[str] = set()
    for i, item in enumerate(raw):
        here = f"products.{i}"
        if not isinstance(item, Mapping):
            errors.add(here, "Must be an object.")
            continue
        code = item.get("code")
        if not isinstance(code, str) or not _CODE.match(code):
            errors.add(f"{here}.code", "Letters, digits, '.', '_' or '-', at most 64 characters.")
            code = None
        elif code in codes:
            errors.add(f"{here}.code", f"Product code {code} is listed twice.")
        codes.add(code or "")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            errors.add(f"{here}.name", "A name of 1 to 200 characters is required.")
        pricing = item.get("pricing")
        gram_amount: int | None = None
        if pricing not in ("per_vial", "per_gram"):
            errors.add(f"{here}.pricing", "Must be per_vial or per_gram.")
        elif pricing == "per_gram":
            gram_amount = _amount(item.get("gram_amount"), f"{here}.gram_amount", errors)
        elif item.get("gram_amount") is not None:
            errors.add(f"{here}.gram_amount", "A product priced per vial has no price per gram.")
        vials = _vials(item.get("vials"), f"{here}.vials", str(pricing), errors)
        if code and isinstance(name, str) and pricing in ("per_vial", "per_gram"):
            products.append(Product(code, name.strip(), pricing, vials, gram_amount))
    return tuple(products)


def _service(raw: Any, errors: _Errors) -> ServiceFee:
    if not isinstance(raw, Mapping):
        errors.add("infusion_service", "The infusion service fee is required.")
        return ServiceFee((), None)
    tiers_raw = raw.get("tiers")
    tiers: list[ServiceTier] = []
    if not isinstance(tiers_raw, list) or not tiers_raw:
        errors.add("infusion_service.tiers", "At least one tier is required (a flat fee is one tier).")
    else:
        previous = 0
        for i, item in enumerate(tiers_raw):
            here = f"infusion_service.tiers.{i}"
            if not isinstance(item, Mapping):
                errors.add(here, "Must be an object.")
                continue
            minutes = item.get("up_to_minutes")
            if type(minutes) is not int or minutes <= 0 or minutes > 24 * 60:
                errors.add(f"{here}.up_to_minutes", "Must be whole minutes from 1 to 1440.")
                continue
            if minutes <= previous:
                errors.add(f"{here}.up_to_minutes", "Tiers must be in ascending order of minutes.")
                continue
            previous = minutes
            amount = _amount(item.get("amount"), f"{here}.amount", errors)
            if amount is not None:
                tiers.append(ServiceTier(minutes, amount))
    extra = raw.get("extra_per_30_minutes")
    if extra is not None:
        extra = _amount(extra, "infusion_service.extra_per_30_minutes", errors)
    return ServiceFee(tuple(tiers), extra)


def _tax(raw: Any, errors: _Errors) -> dict[str, TaxRate]:
    rates = {category: TaxRate(Decimal(0), "Exempt") for category in CATEGORIES}
    if raw is None:
        return rates
    if not isinstance(raw, Mapping):
        errors.add("tax", "Must be an object keyed by category.")
        return rates
    for category, item in raw.items():
        here = f"tax.{category}"
        if category not in CATEGORIES:
            errors.add(here, f"Unknown category; tax applies to {' and '.join(CATEGORIES)}.")
            continue
        if not isinstance(item, Mapping):
            errors.add(here, "Must be an object with rate and label.")
            continue
        rate = _decimal(item.get("rate", "0"), f"{here}.rate", errors)
        if rate is not None and not Decimal(0) <= rate <= Decimal(100):
            errors.add(f"{here}.rate", "A percentage from 0 to 100.")
            rate = None
        label = item.get("label", "Exempt")
        if not isinstance(label, str) or not label.strip() or len(label) > 40:
            errors.add(f"{here}.label", "A label of 1 to 40 characters is required.")
            label = None
        if rate is not None and label is not None:
            rates[category] = TaxRate(rate, label.strip())
    return rates


def price_list_from_document(
    document: Mapping[str, Any], *, id: str | None = None, version: int | None = None
) -> PriceList:
    """Build and check a price list from its JSON document; raise PriceListInvalid on any fault."""
    errors = _Errors()
    effective_from = document.get("effective_from")
    if isinstance(effective_from, str):
        try:
            effective_from = date.fromisoformat(effective_from)
        except ValueError:
            effective_from = None
    if not isinstance(effective_from, date):
        errors.add("effective_from", "A date like 2026-01-01 is required.")
    currency = document.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        errors.add("currency", "A three-letter ISO 4217 code like GBP.")
    statement = document.get("statement", DEFAULT_STATEMENT)
    if not isinstance(statement, str) or not statement.strip() or len(statement) > 1000:
        errors.add("statement", "A statement of 1 to 1000 characters is required.")
    products = _products(document.get("products"), errors)
    service = _service(document.get("infusion_service"), errors)
    tax = _tax(document.get("tax"), errors)
    cancellation = document.get("cancellation") or {}
    charge_prepared = cancellation.get("charge_prepared_product", True) if isinstance(cancellation, Mapping) else None
    if not isinstance(charge_prepared, bool):
        errors.add("cancellation.charge_prepared_product", "Must be true or false.")
    errors.raise_if_any()
    return PriceList(
        effective_from=effective_from,  # type: ignore[arg-type]
        currency=currency,  # type: ignore[arg-type]
        statement=statement.strip(),  # type: ignore[union-attr]
        products=products,
        service=service,
        tax=tax,
        charge_prepared_product=charge_prepared,  # type: ignore[arg-type]
        id=id,
        version=version,
    )
