"""What the booking system sent: recent and failed events, with the reason and what to do about
it, replay once fixed, and dismissal with a note."""

from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from .. import booking
from ..errors import DomainProblem
from ..payments import payment_base_url
from ..states import BookingOutcome
from . import bp, can, requires
from .invoices import ConfirmForm, actor, at_clinic, plain_text, who

OUTCOMES = tuple(o.value for o in BookingOutcome if o is not BookingOutcome.DUPLICATE)
OUTCOME_SAID = {BookingOutcome.FINALIZED: "issued"}  # the staff pages' one verb for it

# Why an event failed (its recorded reason) → what finance staff do about it. First match wins.
GUIDANCE = [
    (re.compile(r"^No product "),
     "The product isn't on the price list in effect on the service date: ask an admin to add it "
     "(Price lists → new version), then Replay."),
    (re.compile(r"^No price list is in effect"),
     "No price list covers the service date: ask an admin to add a price list version in effect on that "
     "date, then Replay."),
    (re.compile(r"has no [\d.]+ g vial"),
     "The booking reports a vial size this product doesn't come in: have the dispensed vials corrected in "
     "the booking system (its next event is applied by itself), or ask an admin to add the size, then Replay."),
    (re.compile(r"^The booking in this event is incomplete or invalid"),
     "The booking system sent a booking with details missing or wrong: have it corrected there (its next "
     "event is applied by itself), then Dismiss this one with a note."),
    (re.compile(r"already has invoice"),
     "The booking already has an invoice made by hand. If that invoice is right, Dismiss this event with a "
     "note; if this event's should replace it, void that invoice, then Replay."),
    (re.compile(r"^Invoice \S+ is (open|paid|void|uncollectible)"),
     "The booking's invoice was issued, paid or voided, so the event can't change it: correct it by hand "
     "(a credit note, or a new invoice), then Dismiss this event with a note."),
    (re.compile(r"minutes"),
     "The price list doesn't price an infusion this long: have the duration corrected in the booking "
     "system, or ask an admin for a price list version with a longer tier, then Replay."),
    (re.compile(r"dose|weight|g/kg|grams|vials dispensed", re.IGNORECASE),
     "The dose or the vials can't be billed as sent: have them corrected in the booking system (its next "
     "event is applied by itself), or make the invoice by hand (New invoice), then Dismiss this event with "
     "a note."),
]
OTHERWISE = ("Fix what the reason says, then Replay; or, if this event should never be billed, Dismiss it "
             "with a note.")


def guidance(error: str | None) -> str:
    for pattern, what_to_do in GUIDANCE:
        if error and pattern.search(error):
            return what_to_do
    return OTHERWISE


def patient_name(event) -> str:
    """The patient the booking is for, as the event names them (staff pages only, never logs)."""
    data = (event.body or {}).get("data") if isinstance(event.body, dict) else None
    patient = data.get("patient") if isinstance(data, dict) else None
    name = patient.get("name") if isinstance(patient, dict) else None
    return name.strip()[:200] if isinstance(name, str) else ""


class DismissForm(FlaskForm):
    note = StringField("Note (why it won't be applied)", validators=[DataRequired(), Length(max=500), plain_text])


@bp.get("/booking-events")
@requires("viewer")
def booking_events():
    outcome = request.args.get("outcome") or None
    if outcome not in OUTCOMES:
        outcome = None
    rows, has_more = booking.list_events(limit=100, starting_after=request.args.get("after") or None, outcome=outcome)
    older = url_for("web.booking_events", outcome=outcome or "", after=rows[-1].id) if has_more and rows else None
    return render_template("booking_events.html", rows=rows, outcome=outcome, older=older, form=ConfirmForm(), can=can,
                           dismiss=DismissForm(), guidance=guidance, patient_name=patient_name, at_clinic=at_clinic,
                           outcome_said=OUTCOME_SAID,
                           who=who(e.dismissed_by for e in rows if e.dismissed_by))


@bp.post("/booking-events/<event_id>/replay")
@requires("finance")
def replay_booking_event(event_id: str):
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("web.booking_events"), code=303)
    try:
        outcome = booking.replay_event(event_id, payment_base_url=payment_base_url())
    except DomainProblem as error:
        flash(f"Event {event_id} still can't be applied: {error.for_people()}", "error")
    else:
        flash(f"Event {event_id} applied: {OUTCOME_SAID.get(outcome.result, outcome.result)}.")
    return redirect(url_for("web.booking_events", outcome="failed"), code=303)


@bp.post("/booking-events/<event_id>/dismiss")
@requires("finance")
def dismiss_booking_event(event_id: str):
    form = DismissForm()
    if not form.validate_on_submit():
        flash("To dismiss an event, write a note saying why." if not form.note.data or not form.note.data.strip()
              else "; ".join(e for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("web.booking_events", outcome="failed"), code=303)
    try:
        booking.dismiss_event(event_id, actor(), form.note.data)
    except DomainProblem as error:
        flash(error.for_people(), "error")
    else:
        flash(f"Event {event_id} dismissed; your note is kept with it.")
    return redirect(url_for("web.booking_events", outcome="failed"), code=303)
