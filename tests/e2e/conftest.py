"""Headless Chromium (Debian's package) driven by Playwright, against the live test server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# As this machine's browser probe runs it: no sandbox as root, and no background traffic,
# whose connections the closed network would refuse.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (.ci/run does this)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 420, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def laptop(browser):
    """A staff member's window: laptop-sized (1280 × 900), downloads and the clipboard allowed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    yield context.new_page()
    context.close()


STAFF_PASSWORD = "correct horse battery"


def sign_in(page, base: str, email: str, password: str = STAFF_PASSWORD) -> None:
    """Sign in on the staff pages and wait for the dashboard."""
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def fill_new_invoice(page, base: str, patient_name: str = "Sam Example", **fields: str) -> None:
    """Open the new-invoice form and fill in the contract's example infusion (0.4 g/kg at
    68.5 kg, a week ahead) for patient pt_42, plus any other field by its label."""
    from tests.factories import days_ahead

    page.goto(base + "/invoices/new")
    page.get_by_label("Patient id").fill("pt_42")
    page.get_by_label("Patient name").fill(patient_name)
    for label, value in fields.items():
        page.get_by_label(label).fill(value)
    page.get_by_label("Grams per kg").fill("0.4")
    page.get_by_label("Weight (kg)").fill("68.5")
    page.get_by_label("Service date").fill(days_ahead(7))


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def paying_online(app, api, stripe_on, live_server, monkeypatch):
    """The live service with paying online on: localstripe signs and sends its events to it,
    and the contract's price list is loaded."""
    import time

    from tests.conftest import STRIPE_WEBHOOK_SECRET
    from tests.factories import price_list_document

    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", live_server.url)
    stripe_on.register_webhook(f"{live_server.url}/api/v1/webhooks/stripe", STRIPE_WEBHOOK_SECRET)
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201
    yield stripe_on
    stripe_on.silence_webhooks()
    time.sleep(1.2)  # localstripe sends each event a second after it happens: let those pass
