"""Price lists for staff: the versions, a form for the next one (prefilled from the current
one, errors shown where they are), and a quote calculator."""

from __future__ import annotations

from typing import Any

from babel.numbers import list_currencies
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, FieldList, Form, FormField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from ..clock import today_at_clinic
from .. import price_lists
from ..pricing import DEFAULT_STATEMENT, PriceListInvalid, decimal_text
from ..money_format import show
from . import bp, choices, pence, pounds, requires
from .invoices import InfusionFields, price_form, product_choices, quote_view

_CURRENCIES = frozenset(list_currencies())


class ProductRow(Form):
    code = StringField("Code", validators=[Optional(), Length(max=64)])
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    pricing = SelectField("Priced", choices=choices([("per_vial", "per vial"), ("per_gram", "per gram")]))
    gram_price = StringField("Price per gram (£)", validators=[Optional(), Length(max=20)])
    vials = TextAreaField("Vials: grams = price (£), one a line; per gram: grams only",
                          validators=[Optional(), Length(max=2000)])


class PriceListForm(FlaskForm):
    effective_from = DateField("Effective from", validators=[DataRequired()])
    currency = StringField("Currency", validators=[DataRequired(), Length(min=3, max=3)], default="GBP")
    statement = TextAreaField("Statement on every quote and invoice", validators=[DataRequired(), Length(max=1000)],
                              default=DEFAULT_STATEMENT)
    products = FieldList(FormField(ProductRow), min_entries=1)
    tiers = TextAreaField("Service fee tiers: up to minutes = price (£), one a line",
                          validators=[DataRequired(), Length(max=2000)])
    extra_per_30 = StringField("Each started 30 minutes past the last tier (£, blank for none)",
                               validators=[Optional(), Length(max=20)])
    product_tax_rate = StringField("Product tax rate (%)", default="0", validators=[DataRequired(), Length(max=10)])
    product_tax_label = StringField("Product tax label", default="Exempt", validators=[DataRequired(), Length(max=40)])
    service_tax_rate = StringField("Service tax rate (%)", default="0", validators=[DataRequired(), Length(max=10)])
    service_tax_label = StringField("Service tax label", default="Exempt", validators=[DataRequired(), Length(max=40)])
    charge_prepared_product = BooleanField("Charge the product when a cancelled infusion's vials were prepared",
                                           default=True)


class QuoteForm(InfusionFields):
    class Meta:
        csrf = False  # the calculator changes nothing


def prefill(document: dict[str, Any]) -> dict[str, Any]:
    """Form data from a stored document, so the next version starts as the current one."""
    tax = document.get("tax") or {}
    service = document["infusion_service"]
    return {
        "currency": document["currency"], "statement": document.get("statement", DEFAULT_STATEMENT),
        "products": [{
            "code": p["code"], "name": p["name"], "pricing": p["pricing"], "gram_price": pounds(p.get("gram_amount")),
            "vials": "\n".join(v["grams"] if p["pricing"] == "per_gram" else f"{v['grams']} = {pounds(v['unit_amount'])}"
                               for v in p["vials"]),
        } for p in document["products"]] + [{}],
        "tiers": "\n".join(f"{t['up_to_minutes']} = {pounds(t['amount'])}" for t in service["tiers"]),
        "extra_per_30": pounds(service.get("extra_per_30_minutes")),
        "product_tax_rate": (tax.get("immunoglobulin_product") or {}).get("rate", "0"),
        "product_tax_label": (tax.get("immunoglobulin_product") or {}).get("label", "Exempt"),
        "service_tax_rate": (tax.get("infusion_service") or {}).get("rate", "0"),
        "service_tax_label": (tax.get("infusion_service") or {}).get("label", "Exempt"),
        "charge_prepared_product": (document.get("cancellation") or {}).get("charge_prepared_product", True),
    }


def _pairs(text: str) -> list[tuple[str, str | None]]:
    pairs = []
    for line in (text or "").splitlines():
        if line.strip():
            left, sep, right = line.partition("=")
            pairs.append((left.strip(), right.strip() if sep else None))
    return pairs


def to_document(form: PriceListForm) -> dict[str, Any] | None:
    """The form as a price list document; None (with errors on the fields) if it can't be read."""
    errors: list[tuple[Any, str]] = []

    def money(field, text: str | None) -> int | None:
        try:
            return pence(text)
        except ValueError as error:
            errors.append((field, str(error)))
            return None

    products = []
    for row in form.products:
        sub = row.form
        if not (sub.code.data or sub.name.data or sub.vials.data):
            continue  # the blank row for a new product, left blank
        per_gram = sub.pricing.data == "per_gram"
        vials = []
        for grams, price in _pairs(sub.vials.data):
            if per_gram:
                vials.append({"grams": grams, "unit_amount": None})
            elif price is None:
                errors.append((sub.vials, f"Give each vial a price: \"{grams} = 300.00\"."))
            else:
                vials.append({"grams": grams, "unit_amount": money(sub.vials, price)})
        products.append({"code": (sub.code.data or "").strip(), "name": (sub.name.data or "").strip(),
                         "pricing": sub.pricing.data,
                         "gram_amount": money(sub.gram_price, sub.gram_price.data) if per_gram else None,
                         "vials": vials})
    tiers = []
    for minutes, price in _pairs(form.tiers.data):
        if not minutes.isdigit() or price is None:
            errors.append((form.tiers, f"Write each tier as \"minutes = price\", like \"120 = 250.00\" (not \"{minutes}\")."))
            continue
        tiers.append({"up_to_minutes": int(minutes), "amount": money(form.tiers, price)})
    extra = money(form.extra_per_30, form.extra_per_30.data) if (form.extra_per_30.data or "").strip() else None
    currency = (form.currency.data or "").strip().upper()
    if currency not in _CURRENCIES:
        errors.append((form.currency, "Not an ISO 4217 currency code, like GBP."))
    for field, message in errors:
        field.errors = list(field.errors) + [message]
    if errors:
        return None
    return {
        "effective_from": form.effective_from.data.isoformat(), "currency": currency,
        "statement": form.statement.data.strip(), "products": products,
        "infusion_service": {"tiers": tiers, "extra_per_30_minutes": extra},
        "tax": {"immunoglobulin_product": {"rate": form.product_tax_rate.data.strip(), "label": form.product_tax_label.data.strip()},
                "infusion_service": {"rate": form.service_tax_rate.data.strip(), "label": form.service_tax_label.data.strip()}},
        "cancellation": {"charge_prepared_product": bool(form.charge_prepared_product.data)},
    }


def show_errors(form: PriceListForm, errors: dict[str, list[str]]) -> None:
    """Put each rule the document broke on the field a person typed it in."""
    simple = {"effective_from": form.effective_from, "currency": form.currency, "statement": form.statement,
              "tax.immunoglobulin_product.rate": form.product_tax_rate,
              "tax.immunoglobulin_product.label": form.product_tax_label,
              "tax.infusion_service.rate": form.service_tax_rate, "tax.infusion_service.label": form.service_tax_label,
              "infusion_service.extra_per_30_minutes": form.extra_per_30}
    filled = [row for row in form.products if row.form.code.data or row.form.name.data or row.form.vials.data]
    for path, messages in errors.items():
        field = simple.get(path)
        if field is None and path.startswith("infusion_service"):
            field = form.tiers
        elif field is None and path.startswith("products") and filled:
            parts = path.split(".")
            index = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            sub = filled[min(index, len(filled) - 1)].form
            name = parts[2] if len(parts) > 2 else "code"
            field = {"code": sub.code, "name": sub.name, "pricing": sub.pricing, "gram_amount": sub.gram_price,
                     "vials": sub.vials}.get(name, sub.code)
        elif field is None:
            field = form.effective_from
        field.errors = list(field.errors) + [f"{m}" for m in messages]


@bp.get("/price-lists")
@requires("viewer")
def price_lists_page():
    rows, _ = price_lists.list_price_lists(100, None)
    current = price_lists.version_in_effect(today_at_clinic())
    return render_template("price_lists.html", rows=rows, current=current, decimal_text=decimal_text, show=show)


@bp.route("/price-lists/new", methods=["GET", "POST"])
@requires("admin")
def new_price_list():
    if request.method == "GET":
        current = price_lists.version_in_effect(today_at_clinic())
        form = PriceListForm(data=prefill(current.document) if current else {"products": [{}], "tiers": "240 = 350.00"})
        return render_template("price_list_new.html", form=form, based_on=current)
    form = PriceListForm()
    if form.validate_on_submit():
        document = to_document(form)
        if document is not None:
            try:
                row = price_lists.create_price_list(document, f"user:{current_user.id}")
            except PriceListInvalid as invalid:
                show_errors(form, invalid.errors)
            else:
                flash(f"Price list version {row.version} saved; it applies from {row.effective_from:%-d %B %Y}.")
                return redirect(url_for("web.price_lists_page"), code=303)
    if len(form.products) == 0 or form.products[-1].form.code.data:
        form.products.append_entry({})
    return render_template("price_list_new.html", form=form, based_on=None), 422


@bp.get("/price-lists/quote")
@requires("viewer")
def quote_calculator():
    form = QuoteForm(request.args)
    on = form.service_date.data if form.service_date.data else today_at_clinic()
    form.product_code.choices = product_choices(on)
    quote = None
    if request.args and form.validate():
        priced = price_form(form)
        quote = quote_view(priced) if priced else None
    return render_template("quote.html", form=form, quote=quote)
