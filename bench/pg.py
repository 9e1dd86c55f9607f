"""A scratch PostgreSQL database for the benchmarks, separate from the tests' one."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text

SERVER = os.environ.get("BENCH_POSTGRES_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")


def fresh_database(name: str | None = None) -> str:
    """Drop and recreate `name` (default BENCH_DATABASE_NAME, else billing_bench); return its URL."""
    name = name or os.environ.get("BENCH_DATABASE_NAME", "billing_bench")
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{SERVER}/{name}"
