"""Invoice PDFs print every patient's name as written (issue 15): Noto Sans for Latin, Greek and
Cyrillic, Noto Sans Arabic and Devanagari (shaped), a CJK font when one is installed; a font
subset, not the whole face; and a character no font has is a box and one log line, never a
silent "?"."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing.config import DEBIAN_CJK_FONT
from tests.factories import open_invoice, price_list_document

SMALL = 150_000  # bytes: subsets of the glyphs used (~12–15 KB); a whole face would be 200 KB to 20 MB


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def invoice_pdf(api, name: str) -> tuple[dict, bytes]:
    invoice = open_invoice(api, patient={"id": "pt_unicode", "name": name})
    response = api.get(f"/api/v1/invoices/{invoice['id']}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    return invoice, response.get_data()


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.mark.parametrize("name", [
    "Łukasz Wiśniewski",
    "Zoë Ó Briain",
    "Дмитрий",
    "Ελένη",
    # Right to left, printed shaped (joined letters) and in visual order. pypdf gives back the
    # logical order here, each glyph mapped to its letter, so the name is found as stored:
    # nothing needs normalising.
    "محمد",
    "अनन्या",  # न्य is one conjunct glyph, mapped back to its three characters
])
def test_the_patient_s_name_prints_as_written(api, name):
    _, pdf = invoice_pdf(api, name)
    lines = text_of(pdf).splitlines()
    assert name in lines, lines
    assert len(pdf) < SMALL


def test_an_ascii_invoice_embeds_one_small_font(api):
    _, pdf = invoice_pdf(api, "Alex Example")
    fonts = {font["/BaseFont"] for font in PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"].values()}
    assert fonts == {"/MPDFAA+NotoSans"}  # regular and bold in one face (billing/pdf.py)
    assert len(pdf) < 30_000


def install_noto_cjk() -> str | None:
    """Why Debian's fonts-noto-cjk can't be had, or None once its file is there."""
    if os.path.isfile(DEBIAN_CJK_FONT):
        return None
    if shutil.which("apt-get") is None:
        return "no apt-get here to install Debian's fonts-noto-cjk"
    if os.geteuid() != 0:
        return "installing Debian's fonts-noto-cjk needs root (sudo apt-get install fonts-noto-cjk)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "fonts-noto-cjk"]
    try:
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
            subprocess.run(install, env=env, capture_output=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"apt-get install fonts-noto-cjk failed: {error}"
    return None if os.path.isfile(DEBIAN_CJK_FONT) else "apt-get install fonts-noto-cjk did not install it"


@pytest.fixture(scope="session")
def noto_cjk() -> str:
    reason = install_noto_cjk()
    if reason:
        pytest.skip(reason)
    return DEBIAN_CJK_FONT


def test_a_chinese_name_prints_with_the_configured_cjk_font(api, app, noto_cjk, monkeypatch):
    monkeypatch.setitem(app.config, "PDF_CJK_FONT", noto_cjk)
    _, pdf = invoice_pdf(api, "李雷")
    assert "李雷" in text_of(pdf).splitlines()
    assert len(pdf) < SMALL  # two glyphs of a 20 MB face


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def pdf_log():
    handler = Records()
    logger = logging.getLogger("billing.pdf")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def test_a_character_no_font_has_prints_as_a_box_and_is_logged_once_without_the_name(api, pdf_log):
    name = "ⵜⴰⵎⴰⵣⵉⵖⵜ Tifinagh"  # Tifinagh: in none of the fonts
    invoice, pdf = invoice_pdf(api, name)
    # A box in the font, not "?": each box is mapped to its character, so search finds the name.
    assert name in text_of(pdf).splitlines()
    assert len(pdf_log) == 1
    fields = pdf_log[0].fields
    assert fields["invoice_id"] == invoice["id"] and fields["invoice_number"] == invoice["number"]
    assert fields["scripts"] == ["tifinagh"] and fields["characters"] == 6
    logged = repr((pdf_log[0].getMessage(), fields))
    assert not any(char in logged for char in "ⵜⴰⵎⵣⵉⵖ") and "Tifinagh" not in logged


def test_a_cjk_name_without_a_cjk_font_is_a_box_not_a_question_mark(api, app, pdf_log, monkeypatch):
    monkeypatch.setitem(app.config, "PDF_CJK_FONT", None)
    _, pdf = invoice_pdf(api, "李雷")
    assert "李雷" in text_of(pdf).splitlines()
    assert [record.fields["scripts"] for record in pdf_log] == [["han"]]


def test_a_latin_name_logs_nothing(api, pdf_log):
    invoice_pdf(api, "Zoë Ó Briain")
    assert pdf_log == []


def test_a_cjk_font_that_is_not_a_font_is_logged_and_the_pdf_still_made(api, app, pdf_log, monkeypatch, tmp_path):
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    monkeypatch.setitem(app.config, "PDF_CJK_FONT", str(broken))
    _, pdf = invoice_pdf(api, "王芳")
    assert "王芳" in text_of(pdf).splitlines()
    assert [record.getMessage() for record in pdf_log] == [
        "pdf: a fallback font can't be used", "pdf: no font has some characters; they print as boxes"]


def test_the_fonts_are_prepared_once_into_the_instance_folder(app):
    from billing.pdf import prepare_fonts

    with app.app_context():
        prepare_fonts()  # what make run does; PDFs made before may have prepared them already
    fonts = Path(app.instance_path) / "fonts"
    assert sorted(path.name.split("-")[0] for path in fonts.glob("*.ttf")) == ["arabic", "devanagari", "sans"]
