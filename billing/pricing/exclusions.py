"""Everything that is not the product or the infusion service stays off the bill, with a reason."""

from __future__ import annotations

from dataclasses import dataclass

FERTILITY_CATEGORIES = frozenset(
    {"fertility_investigation", "fertility_treatment", "fertility_preservation"}
)

REASON_FERTILITY = (
    "Fertility investigations, treatment and preservation services are not included in this charge."
)
REASON_PARTNER = "Services for the patient's partner are not included in this charge."
REASON_OTHER = (
    "Only the immunoglobulin product and the infusion service are charged on this document."
)


@dataclass(frozen=True, slots=True)
class OtherItem:
    description: str
    code: str | None = None
    category: str | None = None
    recipient: str = "patient"  # "patient" | "partner"


@dataclass(frozen=True, slots=True)
class ExcludedItem:
    description: str
    code: str | None
    category: str | None
    recipient: str
    reason: str


def exclusion_reason(item: OtherItem) -> str:
    if item.recipient == "partner":
        return REASON_PARTNER
    if item.category in FERTILITY_CATEGORIES:
        return REASON_FERTILITY
    return REASON_OTHER


def exclude(items: tuple[OtherItem, ...]) -> tuple[ExcludedItem, ...]:
    """Every other item is excluded: the two fees come from the prescription alone."""
    return tuple(
        ExcludedItem(i.description, i.code, i.category, i.recipient, exclusion_reason(i))
        for i in items
    )
