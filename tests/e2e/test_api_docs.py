"""The API docs page renders in a browser from the service's own files (no CDN reachable here)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_api_docs_render_offline(page, live_server, artifacts):
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto(live_server.url + "/api/docs")
    page.get_by_text("/api/v1/quotes").first.wait_for(timeout=15000)
    assert page.get_by_text("/api/v1/invoices/{invoice_id}/finalize").count() >= 1
    page.screenshot(path=str(artifacts / "api-docs.png"))
    assert outside == []
