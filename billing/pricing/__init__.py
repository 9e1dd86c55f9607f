"""The pure pricing engine: prescription and price list in, two itemised fees out.

Imports only the standard library, so every rule here is testable without a web
framework or a database.
"""

from .catalogue import (
    CATEGORIES,
    DEFAULT_STATEMENT,
    PRODUCT,
    SERVICE,
    PriceList,
    Product,
    ServiceFee,
    ServiceTier,
    TaxRate,
    Vial,
    decimal_text,
    price_list_from_document,
)
from .dose import Dose, dose_grams
from .errors import (
    CurrencyMismatch,
    DispensedOutOfRange,
    DoseOutOfRange,
    DurationOutOfRange,
    PriceListInvalid,
    PricingError,
    UnknownProduct,
    UnknownVialSize,
)
from .exclusions import ExcludedItem, OtherItem, exclude
from .money import Money, round_half_up
from .quote import CourseQuote, InfusionRequest, Line, Quote, price_course, price_infusion
from .service_fee import service_fee
from .tax import tax_amount
from .vials import Dispensed, VialCount, choose_vials, dispensed_vials, implausible_dispensed

__all__ = [
    "CATEGORIES", "DEFAULT_STATEMENT", "PRODUCT", "SERVICE", "PriceList", "Product",
    "ServiceFee", "ServiceTier", "TaxRate", "Vial", "decimal_text", "price_list_from_document",
    "Dose", "dose_grams", "CurrencyMismatch", "DoseOutOfRange", "DurationOutOfRange",
    "PriceListInvalid", "PricingError", "UnknownProduct", "UnknownVialSize", "ExcludedItem",
    "OtherItem", "exclude", "Money", "round_half_up", "CourseQuote", "InfusionRequest", "Line",
    "Quote", "price_course", "price_infusion", "service_fee", "tax_amount", "Dispensed",
    "VialCount", "choose_vials", "dispensed_vials", "implausible_dispensed", "DispensedOutOfRange",
]
