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
