"""The vial choice: cheapest whole vials that cover the dose; ties → fewest grams → fewest vials."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing import Product, UnknownVialSize, Vial, choose_vials, dispensed_vials
from billing.pricing import vials
from billing.pricing.dose import MAX_DOSE_GRAMS

from .catalogues import contract_price_list

PRICE_LIST = contract_price_list()
PER_VIAL = PRICE_LIST.product("IVIG10-5-10-20")
PER_GRAM = PRICE_LIST.product("IVIG10-PER-GRAM")


def counts(dispensed):
    return {vc.vial.grams: vc.count for vc in dispensed.vials}


def test_contract_example_per_vial():
    dispensed = choose_vials(PER_VIAL, D("27.4"))
    assert counts(dispensed) == {D("20"): 1, D("10"): 1}
    assert dispensed.grams == D("30")
    assert dispensed.amount == 168000


def test_contract_example_per_gram():
    dispensed = choose_vials(PER_GRAM, D("27.4"))
    assert counts(dispensed) == {D("10"): 2, D("5"): 1, D("2.5"): 1}
    assert dispensed.grams == D("27.5")
    assert dispensed.amount == 151250


def test_an_exact_dose_wastes_nothing():
    dispensed = choose_vials(PER_VIAL, D("25"))
    assert counts(dispensed) == {D("20"): 1, D("5"): 1}
    assert dispensed.amount == 142000


def test_a_cheaper_larger_vial_beats_smaller_ones():
    # Two 10 g vials cost more than one 20 g vial here, so 12 g is dispensed as 20 g.
    product = Product("X", "x", "per_vial", (Vial(D("20"), 50000), Vial(D("10"), 40000)))
    dispensed = choose_vials(product, D("12"))
    assert counts(dispensed) == {D("20"): 1}
    assert dispensed.amount == 50000


def test_equal_cost_goes_to_fewest_grams_then_fewest_vials():
    # 5 g at 100 and 10 g at 100: for 4 g the 5 g vial (fewer grams) wins.
    product = Product("X", "x", "per_vial", (Vial(D("10"), 100), Vial(D("5"), 100)))
    assert counts(choose_vials(product, D("4"))) == {D("5"): 1}
    # 10 g at 200 and 5 g at 100: 10 g is one vial or two; one vial wins.
    product = Product("Y", "y", "per_vial", (Vial(D("10"), 200), Vial(D("5"), 100)))
    assert counts(choose_vials(product, D("10"))) == {D("10"): 1}


def test_the_largest_dose_with_one_gram_vials_is_quick_and_exact():
    product = Product("G1", "g", "per_vial", (Vial(D("1"), 5000),))
    dispensed = choose_vials(product, MAX_DOSE_GRAMS)
    assert counts(dispensed) == {D("1"): 200}
    assert dispensed.amount == 1_000_000


def test_dispensed_vials_reported_by_the_pharmacy_are_priced_as_given():
    dispensed = dispensed_vials(PER_VIAL, [(D("10"), 2), (D("5"), 1)])
    assert counts(dispensed) == {D("10"): 2, D("5"): 1}
    assert dispensed.grams == D("25")
    assert dispensed.amount == 142000


def test_a_reported_vial_size_the_product_lacks_is_refused():
    with pytest.raises(UnknownVialSize) as caught:
        dispensed_vials(PER_VIAL, [(D("10"), 1), (D("2.5"), 1)])
    assert caught.value.field == "vials_dispensed.1.grams"


# --- laws, over random catalogues ---------------------------------------------------------

sizes = st.sampled_from([D(s) for s in ("1", "2", "2.5", "3", "5", "6", "7.5", "10", "20", "0.75")])
catalogues = st.lists(
    st.tuples(sizes, st.integers(min_value=0, max_value=150_000)),
    min_size=1, max_size=3, unique_by=lambda t: t[0],
).map(lambda vials: Product(
    "P", "p", "per_vial",
    tuple(Vial(g, a) for g, a in sorted(vials, key=lambda v: v[0], reverse=True)),
))
doses = st.decimals(min_value=D("0.1"), max_value=D("40"), places=2)


def brute_force_best(product: Product, dose: D):
    """Every combination up to dose + largest vial: the key (cost, grams, count) of the best."""
    largest = max(v.grams for v in product.vials)
    bounds = [int((dose + largest) / v.grams) + 1 for v in product.vials]
    best = None
    for combo in itertools.product(*(range(b + 1) for b in bounds)):
        grams = sum(v.grams * n for v, n in zip(product.vials, combo))
        if grams < dose:
            continue
        key = (sum(v.unit_amount * n for v, n in zip(product.vials, combo)), grams, sum(combo))
        if best is None or key < best:
            best = key
    return best


@settings(max_examples=300, deadline=None)
@given(catalogues, doses)
def test_the_choice_covers_the_dose_and_nothing_is_better(product, dose):
    dispensed = choose_vials(product, dose)
    assert dispensed.grams >= dose
    assert dispensed.grams == sum(vc.vial.grams * vc.count for vc in dispensed.vials)
    assert type(dispensed.amount) is int
    assert dispensed.amount == sum(vc.vial.unit_amount * vc.count for vc in dispensed.vials)
    assert (dispensed.amount, dispensed.grams, dispensed.vial_count) == brute_force_best(product, dose)


def fresh(product: Product) -> Product:
    """An equal product that is another object, so its vial table and kept answers are new."""
    return Product(product.code, product.name, product.pricing, product.vials, product.gram_amount)


@settings(max_examples=150, deadline=None)
@given(catalogues, st.lists(doses, min_size=1, max_size=6))
def test_an_answer_kept_for_a_product_is_the_one_worked_out_afresh(product, asked):
    # choose_vials keeps each target's answer per product: asked again, for the same dose or
    # one rounding up to the same target, it gives what a fresh product's table works out.
    for dose in asked + asked[::-1]:
        assert choose_vials(product, dose) == choose_vials(fresh(product), dose)


def test_kept_answers_stop_at_the_cap_and_the_rest_are_still_worked_out(monkeypatch):
    monkeypatch.setattr(vials, "_ANSWERS_PER_PRODUCT", 3)
    product = fresh(PER_GRAM)
    asked = [D(n) / 4 for n in range(1, 60, 3)]  # 0.25 g … 14.5 g: many 2.5 g targets
    for dose in asked + asked:
        assert choose_vials(product, dose) == choose_vials(fresh(PER_GRAM), dose)
    assert len(vials._table(product)[1].answers) == 3
    assert choose_vials(product, D("14.5")).amount == 82500  # 15 g at 5,500 a gram


@settings(max_examples=200, deadline=None)
@given(catalogues, st.decimals(min_value=D("0.01"), max_value=MAX_DOSE_GRAMS, places=4))
def test_every_dose_up_to_the_limit_is_covered(product, dose):
    dispensed = choose_vials(product, dose)
    smallest = min(v.grams for v in product.vials)
    assert dose <= dispensed.grams
    # never a whole vial more than needed: dropping any vial would leave the dose uncovered
    assert all(dispensed.grams - vc.vial.grams < dose for vc in dispensed.vials)
    assert dispensed.grams - dose < max(v.grams for v in product.vials) + smallest


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=D("0.01"), max_value=MAX_DOSE_GRAMS, places=3),
       st.integers(min_value=0, max_value=20_000))
def test_per_gram_pricing_bills_the_fewest_grams_at_the_gram_rate(dose, gram_amount):
    product = Product("G", "g", "per_gram",
                      (Vial(D("10"), None), Vial(D("5"), None), Vial(D("2.5"), None)), gram_amount)
    dispensed = choose_vials(product, dose)
    expected_grams = (dose / D("2.5")).to_integral_value(rounding="ROUND_CEILING") * D("2.5")
    assert dispensed.grams == expected_grams
    assert dispensed.amount == int((expected_grams * gram_amount).to_integral_value(rounding="ROUND_HALF_UP"))
