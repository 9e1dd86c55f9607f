"""The infusion service fee: duration tiers, then each started 30 minutes past the last."""

from __future__ import annotations

from .catalogue import ServiceFee
from .errors import DurationOutOfRange

MAX_DURATION_MINUTES = 720


def service_fee(fee: ServiceFee, duration_minutes: int) -> int:
    if type(duration_minutes) is not int or duration_minutes <= 0:
        raise DurationOutOfRange("The infusion must last at least 1 minute.", "duration_minutes")
    if duration_minutes > MAX_DURATION_MINUTES:
        raise DurationOutOfRange(
            f"An infusion over {MAX_DURATION_MINUTES} minutes is not accepted.", "duration_minutes"
        )
    for tier in fee.tiers:
        if duration_minutes <= tier.up_to_minutes:
            return tier.amount
    last = fee.tiers[-1]
    if fee.extra_per_30_minutes is None:
        raise DurationOutOfRange(
            f"This price list prices infusions up to {last.up_to_minutes} minutes only.",
            "duration_minutes",
        )
    started_half_hours = -(-(duration_minutes - last.up_to_minutes) // 30)
    return last.amount + started_half_hours * fee.extra_per_30_minutes
