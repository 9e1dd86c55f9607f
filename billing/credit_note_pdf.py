"""The credit note as a PDF: headed "Credit note", its own number and date, the invoice it
corrects (number and date), the reason, and the two fee categories apart (HMRC VAT Notice 700
§18: what a credit note must show)."""

from __future__ import annotations

from . import pdf as document
from .models import CreditNote
from .money_format import show


def render_credit_note_pdf(note: CreditNote, invoice, clinic: dict[str, str]) -> bytes:
    cur = note.currency
    pdf, text, font = document.new_document(f"Credit note {note.number}", clinic["name"],
                                            log_fields={"credit_note_id": note.id, "invoice_id": invoice.id})
    pdf.add_page()
    pdf.set_margins(18, 18, 18)
    document.supplier(pdf, text, font, clinic)
    font("B", 14)
    pdf.cell(0, 8, text(f"Credit note {note.number}"), new_x="LMARGIN", new_y="NEXT")
    font("", 10)
    for label, value in (("Credit note date", document.day(note.issued_on)),
                         ("Corrects invoice", f"{invoice.number} of {document.day(invoice.issued_on)}"),
                         ("Date of supply", document.day(invoice.service_date)),
                         ("Reason", note.reason.replace("_", " ") + (f": {note.memo}" if note.memo else ""))):
        pdf.cell(38, 5.5, label)
        pdf.multi_cell(0, 5.5, text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    font("B", 10)
    pdf.cell(80, 5, "Patient", new_x="LMARGIN", new_y="NEXT")
    font("", 10)
    pdf.cell(80, 5, text(invoice.patient_name), new_x="LMARGIN", new_y="NEXT")
    if invoice.bill_to:
        font("B", 10)
        pdf.cell(80, 5, "Bill to", new_x="LMARGIN", new_y="NEXT")
        font("", 10)
        pdf.cell(80, 5, text(invoice.bill_to.get("name")), new_x="LMARGIN", new_y="NEXT")
        if invoice.bill_to.get("reference"):
            pdf.multi_cell(0, 5, text(f"Your reference: {invoice.bill_to['reference']}"),
                           new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    font("B", 10)
    pdf.set_fill_color(235, 238, 242)
    for heading, width, align in (("Credited", 110, "L"), ("Tax", 32, "R"), ("Amount", 32, "R")):
        pdf.cell(width, 7, heading, align=align, fill=True)
    pdf.ln()
    font("", 10)
    names = {"immunoglobulin_product": "Immunoglobulin product", "infusion_service": "Infusion service"}
    for line in note.lines:  # one line per fee category: the two are never merged
        pdf.cell(110, 6, text(f"{names.get(line['category'], line['category'])}: {line['description']}"))
        pdf.cell(32, 6, text(show(line["tax_amount"], cur)), align="R")
        pdf.cell(32, 6, text(show(line["amount"], cur)), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    rows = [("Subtotal", note.subtotal), ("Tax", note.tax), ("Total credited", note.total),
            ("Taken off what was due", note.pre_payment_amount)]
    if note.refund_amount:
        rows.append(("Refunded", note.refund_amount))
    if note.out_of_band_amount:
        rows.append(("Returned another way", note.out_of_band_amount))
    for label, amount in rows:
        font("B" if label == "Total credited" else "", 10)
        pdf.cell(142, 6, label, align="R")
        pdf.cell(32, 6, text(show(amount, cur)), align="R", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def credit_note_pdf(note: CreditNote) -> tuple[str, bytes]:
    from .invoicing import invoice_of_credit_note

    return f"{note.number}.pdf", render_credit_note_pdf(note, invoice_of_credit_note(note), document.clinic_details())
