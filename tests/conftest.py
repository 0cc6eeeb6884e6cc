"""Shared fixtures: settings pointing every path into a temporary folder."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings

from surveillance_pipeline.config import Settings, load_settings
from surveillance_pipeline.storage import Database, normalize_url

# Cold imports on 2 cores trip hypothesis' 200 ms deadline (STACK.md trap 12).
hypothesis_settings.register_profile("ci", deadline=None)
hypothesis_settings.load_profile("ci")

FIXTURES = Path(__file__).parent / "fixtures"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")
TRADE_HEADER = "trade_id,timestamp,symbol,side,price,quantity,buyer_id,seller_id\n"


def make_settings(root: Path, **environ: str) -> Settings:
    env = {
        "DATABASE_URL": f"sqlite:///{root / 'surveillance.db'}",
        "SURVEILLANCE__PATHS__DATA_DIR": str(root),
        "SURVEILLANCE__PATHS__LANDING_DIR": str(root / "landing"),
        "SURVEILLANCE__PATHS__WAREHOUSE_DIR": str(root / "warehouse"),
        "SURVEILLANCE__PATHS__REJECTS_DIR": str(root / "rejects"),
        **environ,
    }
    return load_settings(environ=env)


def project_env(root: Path) -> dict[str, str]:
    """Environment overrides that put a whole pipeline (database, folders, model fallback) under `root`."""
    return {
        "DATABASE_URL": f"sqlite:///{root / 'surveillance.db'}",
        "SURVEILLANCE__PATHS__LANDING_DIR": str(root / "landing"),
        "SURVEILLANCE__PATHS__WAREHOUSE_DIR": str(root / "warehouse"),
        "SURVEILLANCE__PATHS__REJECTS_DIR": str(root / "rejects"),
        "SURVEILLANCE__PATHS__ALERTS_DIR": str(root / "alerts"),
        "SURVEILLANCE__PATHS__REPORTS_DIR": str(root / "reports"),
        "SURVEILLANCE__MODELS__FALLBACK_MODELS": "[isolation_forest]",  # small and fast where models fall back
    }


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` for the block (module-scoped fixtures cannot use monkeypatch)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def land_days(landing: Path, scenario, days: list[str]) -> None:
    """A generated scenario's trades and orders as the landing folder's per-day CSV files."""
    import polars as pl

    for day in days:
        folder = landing / day
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in (("trades.csv", scenario.trades), ("orders.csv", scenario.orders)):
            frame.filter(pl.col("timestamp").dt.date().cast(pl.String) == day).with_columns(
                pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).write_csv(folder / name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def write(tmp_path: Path):
    """Write a text file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write


@pytest.fixture(autouse=True, scope="session")
def _private_mlflow_store(tmp_path_factory) -> Iterator[None]:
    """Code that reaches the configured MLflow store in a test writes to a throw-away one, never the project's."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        yield
        return
    os.environ["MLFLOW_TRACKING_URI"] = str(tmp_path_factory.mktemp("mlflow-default"))
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running; `make test-fast` skips them")


# -- databases: every storage test runs on SQLite and on PostgreSQL (TEST_POSTGRES_URL) --------------
def _shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """URL of a fresh database on the test server (created now, dropped at the end of the session)."""
    server_url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    admin = sa.create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool,
                             connect_args={"connect_timeout": 3})
    name = f"surveillance_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        admin.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        pytest.skip(f"PostgreSQL unreachable at {_shown(server_url)} (set TEST_POSTGRES_URL): {reason}")
    try:
        yield sa.make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    """A `Database` on an empty (unmigrated) store, once per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store' / 'surveillance.db'}"
    else:
        url = request.getfixturevalue("postgres_database_url")
        _reset_postgres(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def db(empty_db: Database) -> Database:
    """A migrated `Database`, once per backend."""
    empty_db.migrate()
    return empty_db


