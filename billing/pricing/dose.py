"""The prescribed dose in grams: fixed, or by body weight, exactly and within sane bounds."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .errors import DoseOutOfRange

MIN_DOSE_GRAMS = Decimal("0.01")  # less is a typo or a unit mix-up, never a prescription
MAX_DOSE_GRAMS = Decimal(200)
MAX_GRAMS_PER_KG = Decimal(2)
MAX_WEIGHT_KG = Decimal(300)


@dataclass(frozen=True, slots=True)
class Dose:
    grams: Decimal | None = None
    grams_per_kg: Decimal | None = None
    weight_kg: Decimal | None = None


def dose_grams(dose: Dose) -> Decimal:
    """The dose in grams; raise DoseOutOfRange for anything missing, non-positive or absurd."""
    if dose.grams is not None:
        if dose.grams_per_kg is not None or dose.weight_kg is not None:
            raise DoseOutOfRange("Give the dose in grams, or as grams_per_kg with weight_kg, not both.", "dose")
        grams = dose.grams
        if grams <= 0:
            raise DoseOutOfRange("The dose must be more than 0 g.", "dose.grams")
        if grams < MIN_DOSE_GRAMS:
            raise DoseOutOfRange(f"A dose under {MIN_DOSE_GRAMS} g is not accepted.", "dose.grams")
        if grams > MAX_DOSE_GRAMS:
            raise DoseOutOfRange(f"A dose over {MAX_DOSE_GRAMS} g is not accepted.", "dose.grams")
        return grams
    if dose.grams_per_kg is None or dose.weight_kg is None:
        raise DoseOutOfRange("A dose needs grams, or grams_per_kg together with weight_kg.", "dose")
    if dose.grams_per_kg <= 0:
        raise DoseOutOfRange("grams_per_kg must be more than 0.", "dose.grams_per_kg")
    if dose.grams_per_kg > MAX_GRAMS_PER_KG:
        raise DoseOutOfRange(f"A dose over {MAX_GRAMS_PER_KG} g/kg is not accepted.", "dose.grams_per_kg")
    if dose.weight_kg <= 0:
        raise DoseOutOfRange("weight_kg must be more than 0.", "dose.weight_kg")
    if dose.weight_kg > MAX_WEIGHT_KG:
        raise DoseOutOfRange(f"A weight over {MAX_WEIGHT_KG} kg is not accepted.", "dose.weight_kg")
    grams = dose.grams_per_kg * dose.weight_kg  # exact: Decimal multiplication of finite decimals
    if grams < MIN_DOSE_GRAMS:
        raise DoseOutOfRange(f"{grams.normalize():f} g is under the {MIN_DOSE_GRAMS} g a dose must reach.", "dose")
    if grams > MAX_DOSE_GRAMS:
        raise DoseOutOfRange(
            f"{grams.normalize():f} g is over the {MAX_DOSE_GRAMS} g limit for one infusion.", "dose"
        )
    return grams
