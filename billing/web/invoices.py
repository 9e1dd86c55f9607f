"""Invoices for staff: list and search, detail, a new draft priced as it is filled in, and
each action behind a confirmation."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.validators import ValidationError as ValidationError_

from .. import booking, invoicing, outbox, payment_links
from ..clock import CLINIC_TIME, today_at_clinic
from ..errors import DomainProblem
from ..money_format import show
from ..payments import public_base_url, stripe_gateway
from ..pdf import invoice_pdf
from ..price_lists import price_list_in_effect
from ..pricing import PRODUCT, PricingError, Quote
from ..quotes import build_request, price_one
from ..states import MANUAL_METHODS, METHOD_NAMES, TAKES_PAYMENT
from . import bp, can, choices, pence, pounds, requires

ACTOR_NAMES = {invoicing.STRIPE_ACTOR: "Stripe (card payments online)", booking.ACTOR: "Booking system",
               outbox.WORKER: "Outbox worker (emails, Stripe follow-ups)"}
# Audit actions in the words the pages use for them (the buttons say Issue and Write off).
ACTIONS_SAID = {"finalized": "issued", "marked_uncollectible": "written off"}
PAGE = 50


def actor() -> str:
    return f"user:{current_user.id}"


def who(actors: Iterable[str]) -> dict[str, str]:
    """Actors as recorded ("user:usr_…", "api_key:key_…") → what staff recognise: the person's
    email, the API key's name. An actor not found stays as recorded."""
    from sqlalchemy import select

    from ..extensions import db
    from ..models import ApiKey, User

    actors = set(actors)
    names = {a: ACTOR_NAMES[a] for a in actors if a in ACTOR_NAMES}
    ids = {kind: {a.split(":", 1)[1] for a in actors if a.startswith(f"{kind}:")} for kind in ("user", "api_key")}
    if ids["user"]:
        names.update((f"user:{id_}", email) for id_, email in
                     db.session.execute(select(User.id, User.email).where(User.id.in_(ids["user"]))))
    if ids["api_key"]:
        names.update((f"api_key:{id_}", f"API key “{name}”") for id_, name in
                     db.session.execute(select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(ids["api_key"]))))
    return names


class FilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form changes nothing

    status = SelectField("Status", choices=choices(
        [("", "Any"), ("draft", "Draft"), ("open", "Open"), ("overdue", "Overdue"), ("part_paid", "Part paid"),
         ("paid", "Paid"), ("void", "Void"), ("uncollectible", "Uncollectible")]), validators=[Optional()])
    q = StringField("Search", validators=[Optional(), Length(max=100)],
                    description="Any part of the invoice number, patient name or id, payer or reference, booking id")
    date_from = DateField("Service from", validators=[Optional()])
    date_to = DateField("Service to", validators=[Optional()])


class InfusionFields(FlaskForm):
    product_code = SelectField("Product", validators=[DataRequired()])
    dose_mode = RadioField("Dose", choices=choices([("per_kg", "By weight (g/kg)"), ("grams", "Fixed grams")]),
                           default="per_kg")
    grams_per_kg = StringField("Grams per kg", validators=[Optional(), Length(max=20)])
    weight_kg = StringField("Weight (kg)", validators=[Optional(), Length(max=20)])
    grams = StringField("Grams", validators=[Optional(), Length(max=20)])
    duration_minutes = IntegerField("Duration (minutes)", validators=[DataRequired(), NumberRange(1, 720)], default=180)
    service_date = DateField("Service date", validators=[DataRequired()], default=today_at_clinic)

    def infusion(self) -> dict[str, Any]:
        """The infusion as the API's schema would load it; ValueError names a bad field."""
        def number(field) -> Decimal:
            try:
                value = Decimal((field.data or "").strip())
            except InvalidOperation:
                raise ValueError(field.name) from None
            if not value.is_finite():
                raise ValueError(field.name)
            return value
        dose = ({"grams": number(self.grams)} if self.dose_mode.data == "grams"
                else {"grams_per_kg": number(self.grams_per_kg), "weight_kg": number(self.weight_kg)})
        return {"product_code": self.product_code.data, "dose": dose, "duration_minutes": self.duration_minutes.data,
                "service_date": self.service_date.data, "other_items": [], "vials_dispensed": None}


def one_line(form, field) -> None:
    """The API's rule for names, ids and references, on the staff form too."""
    from marshmallow import ValidationError

    from ..inputs import check_one_line

    if field.data:
        try:
            check_one_line(field.data)
        except ValidationError as error:
            raise ValidationError_(error.messages[0]) from None


def plain_text(form, field) -> None:
    from ..request_guard import has_bad_character

    if field.data and has_bad_character(field.data):
        raise ValidationError_("Contains a control character, which is not allowed.")


def payer_rule(key: str):
    """The API's rule for the payer's `key` (an email's form, an address's lines), on the staff form too."""
    def check(form, field) -> None:
        from ..api.schemas import BillToSchema

        if field.data:
            errors = BillToSchema().validate({"name": "payer", key: field.data}).get(key)
            if errors:
                raise ValidationError_(errors[0])
    return check


class NewInvoiceForm(InfusionFields):
    patient_id = StringField("Patient id", validators=[DataRequired(), Length(max=64), one_line, plain_text])
    patient_name = StringField("Patient name", validators=[DataRequired(), Length(max=200), one_line, plain_text])
    patient_email = EmailField("Patient email", validators=[Optional(), Length(max=254), one_line, plain_text])
    patient_address = StringField("Patient address", validators=[Optional(), Length(max=500), plain_text])
    booking_id = StringField("Booking id", validators=[Optional(), Length(max=64), one_line, plain_text])
    payer_name = StringField("Payer, if not the patient", validators=[Optional(), Length(max=200), one_line,
                                                                       plain_text])
    # The payer's details follow the API's rules for bill_to (billing/api/schemas.py BillToSchema).
    payer_address = TextAreaField("Payer address", filters=[lambda v: v.replace("\r\n", "\n").strip() if v else v],
                                  validators=[Optional(), Length(max=500), plain_text, payer_rule("address")])
    payer_email = EmailField("Payer email", validators=[Optional(), Length(max=254), one_line, plain_text,
                                                        payer_rule("email")])
    payer_reference = StringField("Payer's reference (policy or PO number)",
                                  validators=[Optional(), Length(max=100), one_line, plain_text])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not (self.payer_name.data or "").strip() and any(
                field.data for field in (self.payer_address, self.payer_email, self.payer_reference)):
            self.payer_name.errors = [*self.payer_name.errors, "Enter the payer's name, or leave the payer's details "
                                                                "empty when the patient pays."]
            return False
        return valid

    def bill_to(self) -> dict[str, Any] | None:
        """The payer as the API stores it; None when the patient pays."""
        if not (self.payer_name.data or "").strip():
            return None
        payer = {"name": self.payer_name.data.strip(), "email": (self.payer_email.data or "").strip() or None,
                 "address": self.payer_address.data or None}
        if (self.payer_reference.data or "").strip():
            payer["reference"] = self.payer_reference.data.strip()
        return payer


class PaymentForm(FlaskForm):
    amount = StringField("Amount (£)", validators=[DataRequired(), Length(max=20)])
    method = SelectField("Method", choices=choices([(m.value, METHOD_NAMES[m]) for m in MANUAL_METHODS]))
    reference = StringField("Reference", validators=[Optional(), Length(max=200)])
    received_on = DateField("Received on", validators=[DataRequired()], default=today_at_clinic)


class RefundForm(FlaskForm):
    amount = StringField("Amount (£)", validators=[DataRequired(), Length(max=20)])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=500)])


class ConfirmForm(FlaskForm):
    pass


class CreditNoteForm(FlaskForm):
    reason = SelectField("Reason", choices=choices([("order_change", "The order changed (dose, duration)"),
                                                    ("product_unsatisfactory", "Product not used or unsatisfactory"),
                                                    ("duplicate", "Billed twice"), ("other", "Other")]))
    memo = StringField("Note on the credit note", validators=[Optional(), Length(max=500)])
    product_amount = StringField("Immunoglobulin product to credit (£)", validators=[Optional(), Length(max=20)])
    service_amount = StringField("Infusion service to credit (£)", validators=[Optional(), Length(max=20)])
    refund_amount = StringField("Of which refunded (£)", validators=[Optional(), Length(max=20)], default="0")
    out_of_band_amount = StringField("Of which returned another way (£)", validators=[Optional(), Length(max=20)],
                                     default="0")


def product_choices(on: date | None = None) -> list:
    price_list = price_list_in_effect(on or today_at_clinic())
    return choices([(p.code, f"{p.code} ({p.name})") for p in price_list.products]) if price_list else []


def price_form(form: InfusionFields) -> Quote | None:
    """Price what the form says, putting any problem on the field it is about."""
    try:
        return price_one(build_request(form.infusion()))
    except ValueError as error:
        getattr(form, str(error)).errors = ["Enter a number, like 0.4 or 68.5."]
    except PricingError as error:
        field = {"dose.grams": "grams", "dose.grams_per_kg": "grams_per_kg", "dose.weight_kg": "weight_kg",
                 "dose": "grams_per_kg" if form.dose_mode.data == "per_kg" else "grams"}.get(error.field, error.field)
        target = getattr(form, field, None)
        if target is not None:
            target.errors = [error.message]
        else:
            form.form_errors.append(error.message)
    return None


def quote_view(quote: Quote) -> dict[str, Any]:
    cur = quote.currency
    return {
        "lines": [{"category": line.category, "description": line.description, "amount": show(line.amount, cur),
                   "tax": show(line.tax_amount, cur), "tax_label": line.tax_label,
                   "vials": [f"{vc.count} × {vc.vial.grams.normalize():f} g" for vc in line.vials],
                   "dose": f"{line.dose_grams.normalize():f}" if line.dose_grams is not None else None,
                   "waste": f"{line.waste_grams.normalize():f}" if line.waste_grams is not None else None,
                   "duration": line.duration_minutes} for line in quote.lines],
        "subtotal": show(quote.subtotal.amount, cur), "tax": show(quote.tax.amount, cur),
        "total": show(quote.total.amount, cur), "version": quote.price_list.version,
    }


@bp.get("/invoices")
@requires("viewer")
def invoices():
    from ..invoice_search import AGES, SORTS, find_invoices

    form, found = _list_filter()
    after = invoicing.get_invoice(request.args["after"]) if request.args.get("after") else None
    rows, has_more = find_invoices(found, limit=PAGE, after=after)
    args = {k: v for k, v in request.args.items() if k != "after" and v}
    older = url_for("web.invoices", **args, after=rows[-1].id) if has_more and rows else None
    sorting = {}  # column → (link that sorts by it, or the other way when it is the sort; arrow)
    for key in SORTS:
        ascending_now = found.sort == key
        sort = f"-{key}" if ascending_now else key
        sorting[key] = (url_for("web.invoices", **{**args, "sort": sort}),
                        " ▲" if ascending_now else " ▼" if found.sort == f"-{key}" else "")
    return render_template("invoices.html", form=form, rows=rows, older=older, show=show, sorting=sorting,
                           found=found, today=today_at_clinic(), ages=AGES,
                           csv_url=url_for("web.invoices_list_csv", **args, headers="human"))


def _list_filter():
    """The list's filter from the query string; anything unknown or invalid is left out."""
    from ..invoice_search import AGE_FILTERS, SORTS, InvoiceFilter

    form = FilterForm(request.args)
    form.validate()
    args = request.args
    sort = args.get("sort") or None
    found = InvoiceFilter(
        status=None if form.status.errors else form.status.data or None,
        q=None if form.q.errors else form.q.data or None,
        date_from=form.date_from.data, date_to=form.date_to.data,
        age=args.get("age") if args.get("age") in AGE_FILTERS else None,
        payer=(args.get("payer") or "")[:200] or None, patient=(args.get("patient") or "")[:64] or None,
        sort=sort if sort and sort.removeprefix("-") in SORTS else None)
    return form, found


@bp.get("/invoices.csv")
@requires("viewer")
def invoices_list_csv():
    from ..reports import invoice_list_csv

    _, found = _list_filter()
    return Response("".join(invoice_list_csv(found, human=request.args.get("headers") == "human")),
                    mimetype="text/csv", headers={"Content-Disposition": 'attachment; filename="invoice-list.csv"'})


@bp.route("/invoices/new", methods=["GET", "POST"])
@requires("finance")
def new_invoice():
    form = NewInvoiceForm()
    form.product_code.choices = product_choices()
    quote = None
    if request.method == "POST":
        valid = form.validate_on_submit()
        # Price whatever infusion is there, even before the patient's fields are filled in.
        if not any(getattr(form, f).errors for f in ("product_code", "duration_minutes", "service_date")):
            priced = price_form(form)
            quote = quote_view(priced) if priced else None
            if valid and priced and request.form.get("action") == "create":
                bill_to = form.bill_to()
                patient = {"id": form.patient_id.data.strip(), "name": form.patient_name.data.strip(),
                           "email": form.patient_email.data or None, "address": form.patient_address.data or None}
                try:
                    invoice = booking.create_invoice(build_request(form.infusion()), patient, actor(),
                                                     booking_id=form.booking_id.data or None, bill_to=bill_to)
                except DomainProblem as error:  # the booking has an invoice already
                    form.booking_id.errors = [error.detail]
                else:
                    flash(f"Draft invoice created for {invoice.patient_name}.")
                    return redirect(url_for("web.invoice", invoice_id=invoice.id), code=303)
    if request.headers.get("X-Preview"):
        return render_template("_quote.html", quote=quote, form=form)
    failed = request.method == "POST" and request.form.get("action") == "create"
    return render_template("invoice_new.html", form=form, quote=quote), (422 if failed else 200)


@bp.get("/invoices/<invoice_id>")
@requires("viewer")
def invoice(invoice_id: str):
    inv = invoicing.get_invoice(invoice_id)
    payments, refunds = invoicing.children_of([inv])[inv.seq]
    trail = invoicing.audit_trail(invoice_id)
    payment_url = payment_links.current_link_url(inv, public_base_url())
    from .messages import RemindersForm, ResendForm, invoice_messages

    return render_template("invoice.html", inv=inv, payments=payments, refunds=refunds,
                           messages=invoice_messages(inv), resend_form=ResendForm(), reminders_form=RemindersForm(),
                           credit_notes=invoicing.credit_notes_of(inv), suggestion=_suggested_credit_link(inv, trail),
                           trail=trail, show=show, can=can, status=status_label(inv), money=money_view(inv),
                           who=who(e.actor for e in trail), methods=METHOD_NAMES, at_clinic=at_clinic,
                           actions_said=ACTIONS_SAID,
                           payment_url=payment_url, link_expires=_link_expiry(trail) if payment_url else None,
                           online=stripe_gateway() is not None,
                           payment_of={p.seq: p for p in payments},
                           paid_by={p.seq: _payment_label(p, inv.currency) for p in payments})


def payer_of(inv) -> str:
    """Who pays, as the staff pages say it: the payer named on the invoice, else the patient."""
    return (inv.bill_to or {}).get("name") or "The patient"


def at_clinic(moment) -> str:
    """A stored UTC time as the clinic reads it: "2026-11-27 14:05"."""
    return moment.astimezone(CLINIC_TIME).strftime("%Y-%m-%d %H:%M")


def status_label(inv) -> str:
    """The status as staff need it: an open invoice with money received and more due is part paid."""
    if inv.status in TAKES_PAYMENT and inv.amount_due > 0 and inv.amount_paid > 0:
        return "part paid"
    return inv.status


def money_view(inv) -> dict[str, Any]:
    """Total, Paid, Refunded, Net received and Due in pounds, and one sentence on how they relate."""
    cur = inv.currency
    figures = {"total": inv.total, "paid": inv.amount_paid, "refunded": inv.amount_refunded,
               "net": inv.amount_paid - inv.amount_refunded, "applied": inv.credit_applied, "due": inv.amount_due}
    shown = {name: show(amount, cur) for name, amount in figures.items()}
    credit = f" − credit notes applied {shown['applied']}" if inv.credit_applied else ""
    relation = f"Due {shown['due']} = Total {shown['total']} − Paid {shown['paid']}{credit}"
    if inv.total - inv.amount_paid - inv.credit_applied < 0:
        relation += " (below zero: more came in than was owed, and nothing is owed back)"
    relation += (f". Refunds give back money already received without making it due again: "
                 f"Net received {shown['net']} = Paid {shown['paid']} − Refunded {shown['refunded']}.")
    return {**shown, "relation": relation}


def _payment_label(payment, currency: str) -> str:
    """A payment as staff know it: how, how much, when, and its reference (never its pay_… id)."""
    label = (f"{METHOD_NAMES.get(payment.method, payment.method)} of {show(payment.amount, currency)} "
             f"on {payment.received_on.isoformat()}")
    if payment.reference and not payment.stripe_payment_intent:
        label += f", reference {payment.reference}"
    return label


def _link_expiry(trail) -> str | None:
    """When the newest payment link stops working, from the audit event that made it."""
    for event in reversed(trail):
        if event.action == "payment_link_created" and (event.detail or {}).get("expires_at"):
            return at_clinic(datetime.fromisoformat(event.detail["expires_at"]))
    return None


def _suggested_credit_link(inv, trail) -> str | None:
    """The credit note the newest booking flag suggests, as a prefilled form's address."""
    for event in reversed(trail):
        suggested = (event.detail or {}).get("suggested_credit")
        if event.action == "flagged" and suggested:
            left = invoicing.credit_left(inv)
            args = {f"{'product' if c == PRODUCT else 'service'}_amount": pounds(min(a, left.get(c, 0)))
                    for c, a in suggested.items() if min(a, left.get(c, 0)) > 0}
            if not args:
                return None
            return url_for("web.invoice_action", invoice_id=inv.id, action="credit-note", reason="order_change",
                           memo="The booking changed after the invoice was issued", **args)
        if event.action == "credit_note_issued":
            return None
    return None


@bp.get("/invoices/<invoice_id>/pdf", endpoint="invoice_pdf")
@requires("viewer")
def invoice_pdf_page(invoice_id: str):
    name, body = invoice_pdf(invoicing.get_invoice(invoice_id), public_base_url())
    return Response(body, mimetype="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})


@bp.get("/credit-notes/<credit_note_id>/pdf")
@requires("viewer")
def credit_note_pdf(credit_note_id: str):
    from ..credit_note_pdf import credit_note_pdf as render

    name, body = render(invoicing.get_credit_note(credit_note_id))
    return Response(body, mimetype="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})


class ReasonForm(FlaskForm):
    reason = StringField("Reason (kept in the audit trail)", validators=[DataRequired(), Length(max=500), plain_text])


# action → title, what it means, the use case, whether it asks for a reason, the message once done.
# One verb each, on the link, the confirmation and the message: issue, void, write off.
ACTIONS = {
    "finalize": ("Issue this invoice", "It gets the next number and its lines can't change afterwards.",
                 invoicing.finalize_invoice, False, "Invoice issued."),
    "void": ("Void this invoice", "It stays on record, number and all, but nothing is owed.", invoicing.void_invoice,
             True, "Invoice voided."),
    "mark-uncollectible": ("Write this invoice off", "It is marked uncollectible; a payment can still be recorded.",
                           invoicing.mark_uncollectible, True, "Invoice written off."),
}


@bp.route("/invoices/<invoice_id>/<action>", methods=["GET", "POST"])
@requires("finance")
def invoice_action(invoice_id: str, action: str):
    inv = invoicing.get_invoice(invoice_id)
    if action in ACTIONS:
        title, text, use_case, asks_reason, message = ACTIONS[action]
        form = ReasonForm() if asks_reason else ConfirmForm()
        if form.validate_on_submit():
            why = {"reason": form.reason.data.strip()} if asks_reason else {}
            return _done(lambda: use_case(invoice_id, actor(), **why), invoice_id, message)
        return render_template("confirm.html", inv=inv, title=title, text=text, form=form, show=show), (
            422 if form.errors else 200)
    if action == "payment":
        form = PaymentForm()
        return _money_form(form, "payment.html", inv, "Payment of {} recorded.", lambda amount: invoicing.record_payment(
            invoice_id, amount, form.method.data, actor(), reference=form.reference.data or None,
            received_on=form.received_on.data))
    if action == "refund":
        form = RefundForm()
        return _money_form(form, "refund.html", inv, "Refund of {} recorded.", lambda amount: invoicing.refund(
            invoice_id, amount, form.reason.data, actor(), stripe_gateway()))
    if action == "credit-note":
        return _credit_note_form(inv)
    if action == "payment-link":
        form = ConfirmForm()
        if form.validate_on_submit():
            return _done(lambda: payment_links.create_payment_link(invoice_id, actor(), public_base_url()), invoice_id,
                         "A new payment link was made; copy it below.")
        return render_template("confirm.html", inv=inv, title="Make a payment link",
                               text=f"{payer_of(inv)} can pay the amount due by card through it.", form=form,
                               show=show)
    abort(404)


def _credit_note_form(inv):
    form = CreditNoteForm(request.args) if request.method == "GET" else CreditNoteForm()  # GET: prefilled by a link
    left = invoicing.credit_left(inv)
    if request.method == "POST" and form.validate_on_submit():
        amounts: dict[str, int] = {}
        for name in ("product_amount", "service_amount", "refund_amount", "out_of_band_amount"):
            text = (getattr(form, name).data or "").strip()
            try:
                amounts[name] = pence(text) if text else 0
            except ValueError as error:
                getattr(form, name).errors = [str(error)]
        if not form.errors:
            lines = [{"category": category, "amount": amounts[name]}
                     for category, name in ((PRODUCT, "product_amount"), ("infusion_service", "service_amount"))
                     if amounts[name]]
            try:
                note = invoicing.issue_credit_note(
                    inv.id, actor(), reason=form.reason.data, memo=form.memo.data or None, lines=lines,
                    refund_amount=amounts["refund_amount"], out_of_band_amount=amounts["out_of_band_amount"],
                    gateway=stripe_gateway())
            except DomainProblem as error:
                form.form_errors.append(error.for_people())
            else:
                flash(f"Credit note {note.number} issued for {show(note.total, note.currency)}.")
                return redirect(url_for("web.invoice", invoice_id=inv.id), code=303)
    return render_template("credit_note.html", inv=inv, form=form, left=left, show=show), (
        422 if request.method == "POST" else 200)


def _money_form(form, template: str, inv, message: str, run):
    """A form with an amount in pounds: shown, checked, then `run(pence)`; errors by their field."""
    if form.validate_on_submit():
        try:
            amount = pence(form.amount.data)
        except ValueError as error:
            form.amount.errors = [str(error)]
        else:
            return _done(lambda: run(amount), inv.id, message.format(show(amount, inv.currency)),
                         form=form, template=template, inv=inv)
    return render_template(template, inv=inv, form=form, show=show), (422 if form.errors else 200)


def _done(run, invoice_id: str, message: str, *, form=None, template: str | None = None, inv=None):
    """Run a use case; on success back to the invoice, on a refusal show why (where it was asked)."""
    try:
        run()
    except DomainProblem as error:
        if form is not None and template and error.field and hasattr(form, error.field):
            getattr(form, error.field).errors = [error.for_people()]
            return render_template(template, inv=inv, form=form, show=show), error.status
        flash(error.for_people(), "error")
        return redirect(url_for("web.invoice", invoice_id=invoice_id), code=303)
    flash(message)
    return redirect(url_for("web.invoice", invoice_id=invoice_id), code=303)
