"""The invoice as a PDF document: what a UK invoice must show, and the two fees apart.

Uses the PDF core fonts (Helvetica), which render in a few milliseconds but cover Latin-1
only: other letters in names are printed without their accents (Ł → L); anything left
becomes "?". An embedded TrueType font would cover every script but costs ~100 ms a page.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Any

from flask import current_app
from fpdf import FPDF

from .models import Invoice
from .money_format import show
from .pricing import PRODUCT
from .states import TAKES_PAYMENT, InvoiceStatus

_BEYOND_DECOMPOSITION = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i", "Œ": "OE", "œ": "oe",
                                       "‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."})


def latin1(text: str | None) -> str:
    if not text:
        return ""
    text = text.translate(_BEYOND_DECOMPOSITION)
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for char in text:
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            out.append(base if base and base.isascii() else "?")
    return "".join(out)


def _day(value: date | datetime | None) -> str:
    if value is None:
        return "-"
    return f"{value.day} {value:%B %Y}"


class _Invoice(FPDF):
    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110)
        self.cell(0, 10, f"Page {self.page_no()}/{{nb}}", align="C")


def render_invoice_pdf(invoice: Invoice, clinic: dict[str, str], *, issued_on: date | None = None,
                       payment_url: str | None = None) -> bytes:
    cur = invoice.currency
    pdf = _Invoice(format="A4")
    pdf.set_title(latin1(f"Invoice {invoice.number or 'draft'}"))
    pdf.set_author(latin1(clinic["name"]))
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_margins(18, 18, 18)

    # Supplier and document
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 8, latin1(clinic["name"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(100, 4.5, latin1(clinic["address"]), new_x="LMARGIN", new_y="NEXT")
    if clinic.get("contact"):
        pdf.cell(0, 4.5, latin1(clinic["contact"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 14)
    title = f"Invoice {invoice.number}" if invoice.number else "Draft invoice (not yet issued)"
    if invoice.status == InvoiceStatus.VOID:
        title += " - VOID"
    pdf.cell(0, 8, latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for label, value in (("Invoice date", _day(issued_on)), ("Date of supply", _day(invoice.service_date)),
                         ("Due date", _day(invoice.due_date))):
        pdf.cell(35, 5.5, label)
        pdf.cell(0, 5.5, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    # Customer and payer
    y = pdf.get_y()
    _party(pdf, "Patient", invoice.patient_name, invoice.patient_address, 18)
    if invoice.bill_to:
        pdf.set_xy(110, y)
        _party(pdf, "Bill to", invoice.bill_to.get("name"), invoice.bill_to.get("address"), 110)
    pdf.set_y(max(pdf.get_y(), y + 18))
    pdf.ln(4)

    # Lines: the product and the service, always apart
    pdf.set_font("Helvetica", "B", 10)
    pdf.set_fill_color(235, 238, 242)
    for text, width, align in (("Description", 104, "L"), ("Quantity", 22, "R"), ("Tax", 24, "R"), ("Amount", 24, "R")):
        pdf.cell(width, 7, text, align=align, fill=True)
    pdf.ln()
    for line in invoice.lines:
        _line(pdf, line, cur)
    pdf.ln(2)

    # Totals
    rows = [("Subtotal", invoice.subtotal), ("Tax", invoice.tax), ("Total", invoice.total)]
    if invoice.amount_paid:
        rows.append(("Paid", -invoice.amount_paid))
    if invoice.amount_refunded:
        rows.append(("Refunded", invoice.amount_refunded))
    rows.append(("Amount due", invoice.amount_due))
    for label, amount in rows:
        bold = label in ("Total", "Amount due")
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.cell(150, 6, label, align="R")
        pdf.cell(24, 6, latin1(show(amount, cur)), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    # What is not included
    pdf.set_font("Helvetica", size=9)
    if invoice.excluded_items:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(0, 5, "Not included in this invoice", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        for item in invoice.excluded_items:
            pdf.multi_cell(0, 4.5, latin1(f"- {item['description']}: {item['reason']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 4.5, latin1(invoice.statement), new_x="LMARGIN", new_y="NEXT")
    if payment_url and invoice.amount_due > 0 and invoice.status in TAKES_PAYMENT:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 5, "Pay online", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 5, latin1(payment_url), link=payment_url, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _party(pdf: FPDF, label: str, name: str | None, address: str | None, x: int) -> None:
    pdf.set_x(x)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(80, 5, label, new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(x)
    pdf.set_font("Helvetica", size=10)
    pdf.cell(80, 5, latin1(name), new_x="LMARGIN", new_y="NEXT")
    if address:
        pdf.set_x(x)
        pdf.multi_cell(80, 4.5, latin1(address), new_x="LMARGIN", new_y="NEXT")


def _line(pdf: FPDF, line: dict[str, Any], currency: str) -> None:
    pdf.set_font("Helvetica", size=10)
    quantity = f"{line['quantity']} {line['unit']}" if line["unit"] == "g" else line["quantity"]
    tax = f"{line['tax_label']}" if line["tax_rate"] in ("0",) else f"{line['tax_rate']}% {show(line['tax_amount'], currency)}"
    pdf.cell(104, 6, latin1(line["description"]))
    pdf.cell(22, 6, latin1(quantity), align="R")
    pdf.cell(24, 6, latin1(tax), align="R")
    pdf.cell(24, 6, latin1(show(line["amount"], currency)), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8.5)
    pdf.set_text_color(80)
    if line["category"] == PRODUCT:
        vials = ", ".join(
            f"{v['count']} x {v['grams']} g" + (f" at {show(v['unit_amount'], currency)}" if v.get("unit_amount") is not None else "")
            for v in line["vials"])
        detail = f"Whole vials dispensed: {vials}. Dose {line['dose_grams']} g; unused {line['waste_grams']} g."
        if line.get("unit_amount") is not None:
            detail += f" Priced at {show(line['unit_amount'], currency)} per gram."
    else:
        detail = f"Infusion of {line['duration_minutes']} minutes."
    pdf.cell(4)
    pdf.multi_cell(100, 4, latin1(detail), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.ln(1)


def invoice_pdf(invoice: Invoice, base_url: str) -> tuple[str, bytes]:
    """The invoice's file name and PDF, as the API and the staff pages serve it: dated with its
    invoice date at the clinic, carrying its current payment link while it takes payment."""
    from .payment_links import current_link_url

    clinic = {key: current_app.config[f"CLINIC_{key.upper()}"] for key in ("name", "address", "contact")}
    body = render_invoice_pdf(invoice, clinic, issued_on=invoice.issued_on,
                              payment_url=current_link_url(invoice, base_url))
    return f"{invoice.number or invoice.id}.pdf", body
