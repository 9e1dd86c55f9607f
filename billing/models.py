"""The database tables, as SQLAlchemy 2 typed models."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import false
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .states import (
    BookingOutcome,
    CreditNoteReason,
    InvoiceStatus,
    OutboxStatus,
    PaymentMethod,
    RefundStatus,
    check_constraint,
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out; SQLite forgets the zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime: store aware UTC datetimes only")
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class ApiKey(db.Model):
    """A client's API key; only a SHA-256 of the secret is kept (it has 256 bits of entropy)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(db.Model):
    """A member of staff who signs in to the web pages."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Flask-Login's user protocol
    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return self.id


class PriceListVersion(db.Model):
    """One immutable version of the price list; `document` is its canonical JSON."""

    __tablename__ = "price_lists"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    effective_from: Mapped[date] = mapped_column(Date, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


class Invoice(db.Model):
    """An invoice for one infusion. Lines are a JSON snapshot, frozen once the invoice is open;
    the two fee amounts are also columns, so reports can sum them in SQL."""

    __tablename__ = "invoices"
    __table_args__ = (
        # Each list filter walks its own index newest first, so a page costs the same at any size.
        Index("ix_invoices_status_seq", "status", "seq"),
        Index("ix_invoices_patient_seq", "patient_id", "seq"),
        Index("ix_invoices_booking_seq", "booking_id", "seq"),
        # Covering indexes for the dashboard and reports: PostgreSQL answers from the index alone
        # instead of reading every wide invoice row (INCLUDE is ignored on SQLite).
        Index("ix_invoices_issued_on", "issued_on",
              postgresql_include=["status", "product_amount", "service_amount"]),
        # The dashboard's outstanding/overdue figures and aged debt by payer read only these.
        Index("ix_invoices_status_due", "status", "due_date",
              postgresql_include=["total", "amount_paid", "credit_applied", "issued_on", "payer_name", "patient_id",
                                  "patient_name"]),
        # The staff search box matches any part of `search_text`: a trigram index on PostgreSQL;
        # on SQLite a narrow index it scans instead of the wide rows (billing/invoice_search.py).
        Index("ix_invoices_search", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}),
        Index("ix_invoices_payer_seq", "payer_name", "seq"),
        # The list's sortable columns, each read in order either way (invoice_search.SORTS).
        Index("ix_invoices_total_seq", "total", "seq"),
        Index("ix_invoices_due_seq", "due_date", "seq"),
        Index("ix_invoices_service_seq", "service_date", "seq"),
        Index("ix_invoices_patient_name_seq", "patient_name", "seq"),
        Index("ix_invoices_number_seq", "number", "seq"),
        CheckConstraint(check_constraint("status", InvoiceStatus), name="status"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    service_date: Mapped[date] = mapped_column(Date)
    booking_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    patient_name: Mapped[str] = mapped_column(String(200))
    patient_email: Mapped[str | None] = mapped_column(String(254))
    patient_address: Mapped[str | None] = mapped_column(Text)
    bill_to: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    charge: Mapped[str] = mapped_column(String(16), default="full")  # full | product_only
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    price_list_id: Mapped[str] = mapped_column(ForeignKey("price_lists.id"))
    price_list_version: Mapped[int] = mapped_column(Integer)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    excluded_items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    statement: Mapped[str] = mapped_column(Text)
    product_amount: Mapped[int] = mapped_column(BigInteger)
    service_amount: Mapped[int] = mapped_column(BigInteger)
    subtotal: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # Credit notes: their totals, and the part of them that reduced what was due (the rest was
    # money already received, refunded or returned another way).
    amount_credited: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    credit_applied: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issued_on: Mapped[date | None] = mapped_column(Date)  # the invoice date, in the clinic's time zone
    due_date: Mapped[date | None] = mapped_column(Date)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uncollectible_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped by every change; on SQLite, bumping it first is how a use case takes the write lock.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # The PaymentIntent the pay page uses, and how many this invoice has had (for idempotency keys).
    stripe_payment_intent: Mapped[str | None] = mapped_column(String(64))
    stripe_intent_amount: Mapped[int | None] = mapped_column(BigInteger)
    stripe_attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Something finance staff must look at (money that arrived where it shouldn't, and was refunded).
    attention: Mapped[str | None] = mapped_column(Text)
    # Staff switched payment reminders off for this invoice (`billing send-reminders` skips it).
    reminders_off: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Kept by billing/invoice_search.py on every change: the payer's name (bill_to's, for aged
    # debt by payer), and number, patient, payer and booking ids lower-cased for the search box.
    payer_name: Mapped[str | None] = mapped_column(String(200))
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")

    @property
    def amount_due(self) -> int:
        """What is still owed: never below 0 (money beyond the total is refunded, not owed back)."""
        return max(0, self.total - self.amount_paid - self.credit_applied)


class InvoiceCounter(db.Model):
    """The last invoice number used in a year. Finalize increments it inside its own
    transaction, so a number is only ever used by a committed invoice: no gaps."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class CreditNoteCounter(db.Model):
    """The last credit note number used in a year: their own gap-free series (CN-YYYY-NNNNNN)."""

    __tablename__ = "credit_note_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class CreditNote(db.Model):
    """A correction of an issued invoice that leaves the invoice as it was (HMRC: a credit note
    with its own number, citing the invoice). Lines credit one fee category each."""

    __tablename__ = "credit_notes"
    __table_args__ = (CheckConstraint(check_constraint("reason", CreditNoteReason), name="reason"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    invoice_seq: Mapped[int] = mapped_column(ForeignKey("invoices.seq"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    product_amount: Mapped[int] = mapped_column(BigInteger)  # net, per category, for reports
    service_amount: Mapped[int] = mapped_column(BigInteger)
    subtotal: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    pre_payment_amount: Mapped[int] = mapped_column(BigInteger)
    post_payment_amount: Mapped[int] = mapped_column(BigInteger)
    refund_amount: Mapped[int] = mapped_column(BigInteger)
    out_of_band_amount: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    issued_on: Mapped[date] = mapped_column(Date, index=True)  # the credit note's date, at the clinic
    created_by: Mapped[str] = mapped_column(String(64))
    # "<actor>:<Idempotency-Key>" of the request that issued it: a retry finds it, never a second.
    request_key: Mapped[str | None] = mapped_column(String(330), unique=True)


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (CheckConstraint(check_constraint("method", PaymentMethod), name="method"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    invoice_seq: Mapped[int] = mapped_column(ForeignKey("invoices.seq"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    method: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(200))
    received_on: Mapped[date] = mapped_column(Date)
    # One payment per PaymentIntent, however many times Stripe says it succeeded.
    stripe_payment_intent: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class Refund(db.Model):
    """Money given back out of one payment. One through Stripe is written `pending` before Stripe
    is asked, with the idempotency key it will use; only a `succeeded` refund counts in amounts."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint(check_constraint("status", RefundStatus), name="status"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    invoice_seq: Mapped[int] = mapped_column(ForeignKey("invoices.seq"), index=True)
    payment_seq: Mapped[int] = mapped_column(ForeignKey("payments.seq"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default=RefundStatus.SUCCEEDED,
                                        server_default=RefundStatus.SUCCEEDED.value)
    stripe_refund: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The Stripe idempotency key: the refund's own id, or one made from the PaymentIntent id
    # for money refunded because it should not have been taken.
    stripe_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    # "<actor>:<Idempotency-Key>" of the request that asked for it, so a retry reuses the row.
    request_key: Mapped[str | None] = mapped_column(String(330), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(db.Model):
    """Append-only: who did what to which invoice, when, with the state before and after."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_seq: Mapped[int] = mapped_column(ForeignKey("invoices.seq"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(db.Model):
    """A POST's Idempotency-Key and the answer it got, kept to replay to a retry.

    Written in the same transaction as the change the request made, so a stored key always
    means the change happened once."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("actor", "key", name="uq_idempotency_keys_actor_key"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class BookingEvent(db.Model):
    """Every delivery from the booking system, as received, with what became of it."""

    __tablename__ = "booking_events"
    __table_args__ = (Index("ix_booking_events_outcome_seq", "outcome", "seq"),
                      Index("ix_booking_events_booking_seq", "booking_id", "seq"),
                      CheckConstraint(check_constraint("outcome", BookingOutcome), name="outcome"))

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The sender's event id: unique, so two deliveries of one event can't both be applied.
    id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    flag: Mapped[str | None] = mapped_column(Text)  # something finance staff should look at
    invoice_id: Mapped[str | None] = mapped_column(String(32))
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A dismissed event: who dismissed it ("user:usr_…"), when, and their note saying why.
    dismissed_by: Mapped[str | None] = mapped_column(String(64))
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)


class Booking(db.Model):
    """Where each booking stands: the newest event applied and the invoice that matches it."""

    __tablename__ = "bookings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_created: Mapped[int] = mapped_column(BigInteger, default=0)
    last_event_id: Mapped[str | None] = mapped_column(String(100))
    # The booking's infusion invoice now: made by its events or through the API with its id.
    invoice_id: Mapped[str | None] = mapped_column(String(32))
    # The newest event applied was infusion.cancelled: a newer booked/completed is a rebooking.
    cancelled: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentLink(db.Model):
    """A patient's payment link. Only a SHA-256 of its token is kept; the token is an HMAC of
    the link's id under SECRET_KEY, so the database alone can't produce a working link."""

    __tablename__ = "payment_links"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    invoice_seq: Mapped[int] = mapped_column(ForeignKey("invoices.seq"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class StripeEvent(db.Model):
    """Every Stripe event received, with what became of it (ids and amounts only)."""

    __tablename__ = "stripe_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    invoice_id: Mapped[str | None] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInAttempts(db.Model):
    """Sign-in attempts per key (an account, or an address) in the current minute, counted
    with one atomic upsert, so parallel guesses can't all slip under the limit."""

    __tablename__ = "sign_in_attempts"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer)


class StaffSession(db.Model):
    """A signed-in member of staff. The cookie carries only a random id (its SHA-256 is kept
    here), so signing out, deactivation, or a password or role change ends it at once."""

    __tablename__ = "staff_sessions"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(db.Model):
    """Something to tell the outside world after a change, written in the same transaction as
    the change and delivered afterwards by `flask billing worker` (at least once, retried)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_available", "status", "available_at"),
                      CheckConstraint(check_constraint("status", OutboxStatus), name="status"))

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # stripe | email | event
    topic: Mapped[str] = mapped_column(String(64))
    # Set for a message that must exist at most once (a refund of one PaymentIntent, a reminder).
    once_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    invoice_seq: Mapped[int | None] = mapped_column(ForeignKey("invoices.seq"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Not before this; a worker that claims a message moves it forward by a lease, so a worker
    # that dies mid-delivery only delays the message.
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
