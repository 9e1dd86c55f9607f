from billing.pricing import OtherItem, exclude
from billing.pricing.exclusions import REASON_FERTILITY, REASON_OTHER, REASON_PARTNER


def test_fertility_investigations_treatment_and_preservation_are_excluded():
    items = tuple(
        OtherItem("item", code=c, category=c)
        for c in ("fertility_investigation", "fertility_treatment", "fertility_preservation")
    )
    assert [e.reason for e in exclude(items)] == [REASON_FERTILITY] * 3


def test_anything_for_the_partner_is_excluded_the_same_way():
    (excluded,) = exclude((OtherItem("Semen analysis", "SA", "fertility_investigation", "partner"),))
    assert excluded.reason == REASON_PARTNER
    assert excluded.recipient == "partner"


def test_items_of_any_other_kind_are_excluded_too():
    (excluded,) = exclude((OtherItem("Parking", None, None),))
    assert excluded.reason == REASON_OTHER
    assert excluded.description == "Parking"
