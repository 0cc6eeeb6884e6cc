"""Shared fixtures: settings pointing every path into a temporary folder."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from surveillance_pipeline.config import Settings, load_settings

# Cold imports on 2 cores trip hypothesis' 200 ms deadline (STACK.md trap 12).
hypothesis_settings.register_profile("ci", deadline=None)
hypothesis_settings.load_profile("ci")

FIXTURES = Path(__file__).parent / "fixtures"
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running; `make test-fast` skips them")
