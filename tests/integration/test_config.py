"""Settings: safe defaults, and a wrong one stops start-up with one line, not a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from billing.config import ConfigError, database_url, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_a_sqlite_file_and_a_persisted_secret_key(tmp_path):
    first = load_settings({}, tmp_path)
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    assert len(first["SECRET_KEY"]) >= 48
    assert load_settings({}, tmp_path)["SECRET_KEY"] == first["SECRET_KEY"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_a_plain_postgresql_url_gets_the_psycopg_driver(tmp_path):
    assert database_url("postgresql://u@127.0.0.1/db", tmp_path) == "postgresql+psycopg://u@127.0.0.1/db"
    assert database_url("postgres://u@127.0.0.1/db", tmp_path) == "postgresql+psycopg://u@127.0.0.1/db"


@pytest.mark.parametrize("url", ["not a url", "mysql://u@h/db"])
def test_a_bad_database_url_is_a_config_error(url, tmp_path):
    with pytest.raises(ConfigError):
        database_url(url, tmp_path)


def test_a_bad_setting_stops_start_up_with_one_line(tmp_path):
    env = {**os.environ, "DATABASE_URL": "::nonsense::", "BILLING_INSTANCE_PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "billing: configuration error: DATABASE_URL is not a database URL "
        "(expected sqlite:///path or postgresql://…)"
    ]


# --- Every setting the code reads is in the README's table, and nothing else -------------------

def _readme_settings() -> set[str]:
    """The backticked names in the first column of the README's "Settings (environment)" table."""
    import re

    section = (ROOT / "README.md").read_text().split("## Settings (environment)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def _settings_the_code_reads() -> set[str]:
    """Names read from the process environment in billing/**/*.py — `os.environ.get("X")`,
    `environ["X"]`, and `helper(environ, "X", …)` as config.py's _int() — and by make run
    (`${X:-default}` in devtools/run.sh). A WSGI request's `request.environ` is not the process's."""
    import ast
    import re

    def is_environ(node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id == "environ"
        return (isinstance(node, ast.Attribute) and node.attr == "environ"
                and not (isinstance(node.value, ast.Name) and node.value.id == "request"))

    def name(node: ast.AST | None) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    found: set[str | None] = set()
    for path in (ROOT / "billing").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Subscript) and is_environ(node.value):
                found.add(name(node.slice))
            elif isinstance(node, ast.Call) and node.args:
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault") and is_environ(func.value):
                    found.add(name(node.args[0]))
                elif is_environ(node.args[0]) and len(node.args) > 1:
                    found.add(name(node.args[1]))
    found |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", (ROOT / "devtools" / "run.sh").read_text()))
    return {n for n in found if n and re.fullmatch(r"[A-Z][A-Z0-9_]*", n)}


def test_the_readme_lists_every_setting_the_code_reads():
    code, readme = _settings_the_code_reads(), _readme_settings()
    assert {"DATABASE_URL", "INVOICE_DUE_DAYS", "OUTBOX_RETRY_SECONDS", "BILLING_INSTANCE_PATH",
            "BILLING_INSECURE_COOKIES", "PDF_CJK_FONT", "PORT", "LOCALSTRIPE_PORT"} <= code  # the scan works
    assert code - readme == set(), "read by the code but not in the README's settings table"
    assert readme - code == set(), "in the README's settings table but read by nothing"


# --- PDF_CJK_FONT -------------------------------------------------------------------------------

def test_pdf_cjk_font_defaults_to_debian_s_noto_cjk_when_installed(tmp_path, monkeypatch):
    import billing.config as config

    monkeypatch.setattr(config, "DEBIAN_CJK_FONT", str(tmp_path / "NotoSansCJK-Regular.ttc"))
    assert load_settings({}, tmp_path)["PDF_CJK_FONT"] is None
    (tmp_path / "NotoSansCJK-Regular.ttc").write_bytes(b"")
    assert load_settings({}, tmp_path)["PDF_CJK_FONT"] == str(tmp_path / "NotoSansCJK-Regular.ttc")
    font = tmp_path / "cjk.otf"
    font.write_bytes(b"")
    assert load_settings({"PDF_CJK_FONT": f"{font}"}, tmp_path)["PDF_CJK_FONT"] == str(font)
    assert load_settings({"PDF_CJK_FONT": f"{font}#2"}, tmp_path)["PDF_CJK_FONT"] == f"{font}#2"


@pytest.mark.parametrize("value", ["/nowhere/font.ttc", "{tmp}/font.txt", "{tmp}/cjk.otf#two"])
def test_a_pdf_cjk_font_that_can_t_be_a_font_file_stops_start_up(value, tmp_path):
    (tmp_path / "font.txt").write_bytes(b"")
    (tmp_path / "cjk.otf").write_bytes(b"")
    with pytest.raises(ConfigError, match="PDF_CJK_FONT"):
        load_settings({"PDF_CJK_FONT": value.format(tmp=tmp_path)}, tmp_path)


# --- First run ----------------------------------------------------------------------------------

def test_api_docs_with_a_trailing_slash_is_the_swagger_ui(client):
    response = client.get("/api/docs/")
    assert response.status_code == 308 and response.headers["Location"] == "/api/docs"
    assert "swagger-ui" in client.get("/api/docs/", follow_redirects=True).get_data(as_text=True)


def test_sign_in_over_plain_http_with_the_secure_cookie_says_why_it_fails(app, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)  # the default, BILLING_INSECURE_COOKIES unset
    browser = app.test_client()  # over http: a browser never sends a Secure cookie back here
    with caplog.at_level("WARNING", logger="billing.web"):
        response = browser.post("/login", data={"email": "admin@clinic.example", "password": "x", "csrf_token": "x"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "BILLING_INSECURE_COOKIES" in page and "plain http" in page
    assert [r.getMessage() for r in caplog.records if r.name == "billing.web"] == [
        "form refused: the Secure session cookie can't come back over plain http; serve HTTPS or set "
        "BILLING_INSECURE_COOKIES=1 (127.0.0.1 only)"]


def test_a_post_without_a_csrf_token_is_still_a_bare_400_when_cookies_can_work(app):
    response = app.test_client().post("/login", data={"email": "admin@clinic.example", "password": "x"})
    assert response.status_code == 400
    assert "BILLING_INSECURE_COOKIES" not in response.get_data(as_text=True)


# --- Messages: SMTP_URL, MAIL_FROM, BOOKING_NOTIFY_*, and PUBLIC_BASE_URL once they are on --------

def test_paying_online_or_email_without_public_base_url_stops_start_up_with_one_line(tmp_path):
    for setting in ({"SMTP_URL": "smtp://127.0.0.1:8025"}, {"STRIPE_SECRET_KEY": "sk_test_x"}):
        env = {**{k: v for k, v in os.environ.items() if k not in ("PUBLIC_BASE_URL", "SMTP_URL", "STRIPE_SECRET_KEY")},
               **setting, "BILLING_INSTANCE_PATH": str(tmp_path)}
        result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "billing: configuration error: PUBLIC_BASE_URL must be set (e.g. https://billing.clinic.example) once "
            "paying online (STRIPE_SECRET_KEY) or email (SMTP_URL) is on: payment links start with it"]


@pytest.mark.parametrize("name, value, message", [
    ("SMTP_URL", "http://mail.example", "SMTP_URL must look like smtp://host:25"),
    ("SMTP_URL", "smtp://", "SMTP_URL must look like smtp://host:25"),
    ("MAIL_FROM", "not an address", "MAIL_FROM must be an email address"),
    ("BOOKING_NOTIFY_SECRET", "whsec_short", "BOOKING_NOTIFY_SECRET must be whsec_ followed by base64"),
    ("BOOKING_NOTIFY_URL", "ftp://booking.example", "BOOKING_NOTIFY_URL must be an http:// or https:// address"),
    ("PUBLIC_BASE_URL", "billing.clinic.example", "PUBLIC_BASE_URL must be an http:// or https:// address"),
])
def test_a_bad_message_setting_is_a_config_error(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({name: value}, tmp_path)


def test_message_settings_that_work(tmp_path):
    settings = load_settings({"SMTP_URL": "smtp+starttls://user:pw@mail.example:587",
                              "MAIL_FROM": "billing@clinic.example", "CLINIC_NAME": "Riverside Clinic",
                              "BOOKING_NOTIFY_URL": "https://booking.example/hooks/billing",
                              "BOOKING_NOTIFY_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, tmp_path)
    assert settings["MAIL_FROM"] == "Riverside Clinic <billing@clinic.example>"
    assert settings["SMTP_URL"] == "smtp+starttls://user:pw@mail.example:587"
    assert load_settings({}, tmp_path)["MAIL_FROM"] == "Riverside Clinic <billing@localhost>"


def test_booking_notify_url_needs_its_secret():
    from billing.config import check_settings

    with pytest.raises(ConfigError, match="BOOKING_NOTIFY_SECRET must be set with BOOKING_NOTIFY_URL"):
        check_settings({"BOOKING_NOTIFY_URL": "https://booking.example/hooks"})
