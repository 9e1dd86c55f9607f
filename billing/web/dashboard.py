"""The dashboard: what is owed, what is late, what came in, and twelve months of revenue."""

from __future__ import annotations

from flask import render_template

from .. import booking, messages, reports
from ..money_format import show
from ..states import BookingOutcome
from . import bp, requires

CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 720, 220, 12


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def month_label(month: str) -> str:
    """"2025-12" → "Dec 25" ("25/12" read as the 25th of December)."""
    return f"{MONTHS[int(month[5:7]) - 1]} {month[2:4]}"


def revenue_chart(months: list[reports.MonthRevenue], currency: str) -> dict:
    """Stacked bars (product below, service above) scaled to the largest month, as SVG numbers."""
    top = max((m.total for m in months), default=0) or 1
    width = (CHART_WIDTH - BAR_GAP * (len(months) + 1)) / max(len(months), 1)
    bars = []
    for i, month in enumerate(months):
        x = BAR_GAP + i * (width + BAR_GAP)
        product_h = CHART_HEIGHT * month.product / top
        service_h = CHART_HEIGHT * month.service / top
        bars.append({
            "x": round(x, 1), "width": round(width, 1), "label": month_label(month.month),
            "product_y": round(CHART_HEIGHT - product_h, 1), "product_h": round(product_h, 1),
            "service_y": round(CHART_HEIGHT - product_h - service_h, 1), "service_h": round(service_h, 1),
            "title": f"{month.month}: product {show(month.product, currency)}, service {show(month.service, currency)}",
        })
    return {"bars": bars, "width": CHART_WIDTH, "height": CHART_HEIGHT, "top": show(top if top > 1 else 0, currency)}


@bp.get("/")
@requires("viewer")
def dashboard():
    figures = reports.dashboard()
    cur = figures.currency
    return render_template(
        "dashboard.html", figures=figures, chart=revenue_chart(figures.months, cur),
        outstanding=show(figures.outstanding, cur), overdue=show(figures.overdue, cur),
        paid_this_month=show(figures.paid_this_month, cur),
        failed_events=booking.count_events(BookingOutcome.FAILED),
        failed_messages=messages.failed_count(),
        months=[(m.month, show(m.product, cur), show(m.service, cur), show(m.total, cur)) for m in figures.months],
    )
