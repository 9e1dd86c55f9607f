import pytest

from billing.pricing import DurationOutOfRange, ServiceFee, ServiceTier, service_fee

from .catalogues import contract_price_list

FEE = contract_price_list().service


@pytest.mark.parametrize(
    "minutes, amount",
    [(1, 25000), (120, 25000), (121, 35000), (180, 35000), (240, 35000),
     (241, 40000), (270, 40000), (271, 45000), (300, 45000), (720, 35000 + 16 * 5000)],
)
def test_duration_tiers_then_each_started_half_hour(minutes, amount):
    assert service_fee(FEE, minutes) == amount


def test_a_flat_fee_is_one_tier():
    flat = ServiceFee((ServiceTier(720, 30000),), None)
    assert service_fee(flat, 60) == 30000
    assert service_fee(flat, 720) == 30000


def test_past_the_last_tier_without_an_extra_rate_is_refused():
    capped = ServiceFee((ServiceTier(240, 35000),), None)
    with pytest.raises(DurationOutOfRange) as caught:
        service_fee(capped, 241)
    assert caught.value.field == "duration_minutes"


@pytest.mark.parametrize("minutes", [0, -30, 721])
def test_durations_out_of_range_are_refused(minutes):
    with pytest.raises(DurationOutOfRange):
        service_fee(FEE, minutes)
