"""Reports for finance: aged debt, revenue by month and category, CSV for the accounts."""

from __future__ import annotations

from datetime import date

from flask import Response, render_template, request

from .. import reports
from ..invoicing import today_at_clinic
from ..money_format import show
from . import bp, requires


def _period() -> tuple[date | None, date | None]:
    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(request.args.get(name, ""))
        except ValueError:
            return None
    return day("from"), day("to")


@bp.get("/reports")
@requires("viewer")
def reports_page():
    start, end = _period()
    today = today_at_clinic()
    start = start or date(today.year - 1, today.month, 1)
    end = end or today
    months = sorted(reports.revenue_by_month(start, end).values(), key=lambda m: m.month)
    debt = reports.aged_debt()
    return render_template("reports.html", debt=debt, months=months, show=show, start=start, end=end,
                           totals=(sum(m.product for m in months), sum(m.service for m in months)))


def _human() -> bool:
    """`?headers=human`: the header row in words people read; otherwise the documented machine names."""
    return request.args.get("headers") == "human"


def _csv(name: str, chunks) -> Response:
    return Response("".join(chunks), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/reports/invoices.csv")
@requires("viewer")
def invoices_csv():
    return _csv("invoices.csv", reports.invoices_csv(*_period(), human=_human()))


@bp.get("/reports/lines.csv")
@requires("viewer")
def lines_csv():
    return _csv("invoice-lines.csv", reports.lines_csv(*_period(), human=_human()))


@bp.get("/reports/credit-notes.csv")
@requires("viewer")
def credit_notes_csv():
    return _csv("credit-notes.csv", reports.credit_notes_csv(*_period(), human=_human()))


@bp.get("/reports/payments.csv")
@requires("viewer")
def payments_csv():
    return _csv("payments.csv", reports.payments_csv(*_period(), human=_human()))


@bp.get("/reports/refunds.csv")
@requires("viewer")
def refunds_csv():
    return _csv("refunds.csv", reports.refunds_csv(*_period(), human=_human()))
