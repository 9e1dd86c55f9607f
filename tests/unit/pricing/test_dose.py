from decimal import Decimal as D

import pytest

from billing.pricing import Dose, DoseOutOfRange, dose_grams


def test_dose_by_weight_is_exact():
    assert dose_grams(Dose(grams_per_kg=D("0.4"), weight_kg=D("68.5"))) == D("27.4")
    assert dose_grams(Dose(grams_per_kg=D("0.37"), weight_kg=D("68.55"))) == D("25.3635")


def test_fixed_dose_is_taken_as_given():
    assert dose_grams(Dose(grams=D("25"))) == D("25")


@pytest.mark.parametrize(
    "dose, field",
    [
        (Dose(grams=D("0")), "dose.grams"),
        (Dose(grams=D("-5")), "dose.grams"),
        (Dose(grams=D("200.01")), "dose.grams"),
        (Dose(grams_per_kg=D("0"), weight_kg=D("70")), "dose.grams_per_kg"),
        (Dose(grams_per_kg=D("2.01"), weight_kg=D("70")), "dose.grams_per_kg"),
        (Dose(grams_per_kg=D("0.4"), weight_kg=D("0")), "dose.weight_kg"),
        (Dose(grams_per_kg=D("0.4"), weight_kg=D("300.5")), "dose.weight_kg"),
        (Dose(grams_per_kg=D("1"), weight_kg=D("250")), "dose"),  # 250 g: over 200 g
        (Dose(grams_per_kg=D("0.4")), "dose"),
        (Dose(), "dose"),
        (Dose(grams=D("20"), grams_per_kg=D("0.4"), weight_kg=D("60")), "dose"),
    ],
)
def test_absent_or_absurd_doses_are_refused_with_the_field_named(dose, field):
    with pytest.raises(DoseOutOfRange) as caught:
        dose_grams(dose)
    assert caught.value.field == field


def test_the_limits_themselves_are_accepted():
    assert dose_grams(Dose(grams=D("200"))) == D("200")
    assert dose_grams(Dose(grams_per_kg=D("2"), weight_kg=D("100"))) == D("200")
