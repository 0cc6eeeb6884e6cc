"""write_scenario: the scenario's three CSV files, each written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

from surveillance_pipeline.scenarios.spec import Scenario

# ISO-8601 UTC with microseconds, e.g. 2026-03-02T09:30:00.123456Z.
CSV_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
SCENARIO_FILES = ("trades", "orders", "labels")
FILE_MODE = 0o644


def write_scenario(scenario: Scenario, out_dir: Path) -> dict[str, Path]:
    """Write trades.csv, orders.csv and labels.csv into out_dir; returns {"trades": path, ...}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {"trades": scenario.trades, "orders": scenario.orders, "labels": scenario.labels}
    return {name: _write_atomically(frames[name], out_dir / f"{name}.csv") for name in SCENARIO_FILES}


def _write_atomically(frame: pl.DataFrame, path: Path) -> Path:
    # A temporary file in the same directory, so os.replace is a rename on one file system.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".csv.tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.write_csv(tmp_name, datetime_format=CSV_DATETIME_FORMAT)
        os.chmod(tmp_name, FILE_MODE)  # mkstemp creates 0600; these are ordinary data files
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
