"""The landing folder: files of one UTC day, read and validated as a daily partition.

Layout: ``<landing>/<YYYY-MM-DD>/<name>`` or ``<landing>/<name containing YYYY-MM-DD>``. A file whose
name contains "order" holds order events; any other holds trades.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import polars as pl

from surveillance_pipeline.config import Settings
from surveillance_pipeline.contract import ORDER_SCHEMA, REJECT_SCHEMA, TRADE_SCHEMA, Reject
from surveillance_pipeline.ingest.importer import (
    ImportOptions,
    iter_raw,
    make_context,
    prepare_source,
    validate_chunk,
)
from surveillance_pipeline.ingest.presets import ORDERS, TRADES
from surveillance_pipeline.ingest.readers import LINE
from surveillance_pipeline.ingest.validation import ExistingKeys, KeyTracker

SOURCE = "__source"
GENERATE_IDS = "__generate_trade_ids"
_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})")
_ORDERS_WORD = re.compile(r"(?i)(^|[^a-z])orders?([^a-z]|$)")
_IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload")


@dataclass(frozen=True)
class LandingFile:
    path: Path
    day: date
    kind: str
    mtime_ns: int
    size: int

    @property
    def fingerprint(self) -> str:
        """Changes when the file is replaced or rewritten: a new version is processed again."""
        return f"{self.path}:{self.mtime_ns}:{self.size}"


def kind_of(path: Path) -> str:
    return ORDERS if _ORDERS_WORD.search(path.name) else TRADES


def _day_of(path: Path, landing_dir: Path) -> date | None:
    relative = path.relative_to(landing_dir)
    for part in (relative.parts[0], path.name) if len(relative.parts) > 1 else (path.name,):
        match = _DAY.search(part)
        if match:
            try:
                return date.fromisoformat(match.group(1))
            except ValueError:
                return None
    return None


def discover_landing_files(landing_dir: Path, pattern: str = "*") -> list[LandingFile]:
    """Every complete data file under the landing folder whose day can be told from its path."""
    if not landing_dir.exists():
        return []
    found = []
    for path in sorted(landing_dir.rglob(pattern)):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(_IGNORED_SUFFIXES):
            continue
        if "labels" in path.name.lower():
            continue  # ground truth of generated scenarios, not exchange data
        day = _day_of(path, landing_dir)
        if day is None:
            continue
        stat = path.stat()
        found.append(LandingFile(path, day, kind_of(path), stat.st_mtime_ns, stat.st_size))
    return found


def files_for_day(landing_dir: Path, day: date, kind: str, pattern: str = "*") -> list[Path]:
    return [f.path for f in discover_landing_files(landing_dir, pattern) if f.day == day and f.kind == kind]


def read_raw_files(paths: list[Path], options: ImportOptions, settings: Settings) -> pl.DataFrame:
    """All rows of the files, mapped to contract names (strings), with ``__source``, ``__line`` and
    whether the file's trade ids are to be generated: everything validation needs, without the files."""
    frames = []
    batch_rows = options.batch_rows or settings.ingest.batch_rows
    for path in paths:
        prepared = prepare_source(path, options)
        for raw in iter_raw(prepared, batch_rows):
            frames.append(raw.with_columns(pl.lit(str(path)).alias(SOURCE),
                                           pl.lit(prepared.generate_trade_ids).alias(GENERATE_IDS)))
    if not frames:
        return pl.DataFrame(schema={SOURCE: pl.String, LINE: pl.Int64, GENERATE_IDS: pl.Boolean})
    return pl.concat(frames, how="diagonal_relaxed")


def validate_partition(raw: pl.DataFrame, day: date, kind: str, settings: Settings,
                       existing_keys: ExistingKeys | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed rows of `day` and the rejects (with their source file) of a partition's raw rows.

    Rows dated on another day are rejected: a file in a day's landing place must hold that day.
    """
    accepted_parts, reject_parts = [], [pl.DataFrame(schema=REJECT_SCHEMA)]
    keys = KeyTracker()  # duplicates are looked for across all files of the day
    start = datetime.combine(day, time(), tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    for (source, generate_ids), rows in raw.group_by(SOURCE, GENERATE_IDS, maintain_order=True):
        ctx = make_context(bool(generate_ids), settings.ingest.min_timestamp, settings.ingest.max_future_seconds,
                           existing_keys=existing_keys)
        ctx.keys = keys
        accepted, rejects = validate_chunk(rows.drop(SOURCE, GENERATE_IDS), kind, ctx, source)
        stamp = accepted.get_column("timestamp")
        outside = (stamp < start) | (stamp >= end)
        if outside.any():
            moved = accepted.filter(outside).select(
                pl.lit(source).alias(Reject.SOURCE), pl.col(LINE).alias(Reject.LINE),
                pl.lit("timestamp").alias(Reject.FIELD),
                pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ").alias(Reject.VALUE),
                pl.lit(f"not on the partition's day {day.isoformat()} (UTC)").alias(Reject.REASON),
            ).cast(REJECT_SCHEMA)
            rejects = pl.concat([rejects, moved]).sort(Reject.LINE)
            accepted = accepted.filter(~outside)
        accepted_parts.append(accepted.drop(LINE))
        reject_parts.append(rejects)
    empty = pl.DataFrame(schema=TRADE_SCHEMA if kind == TRADES else ORDER_SCHEMA)
    return pl.concat([empty, *accepted_parts]), pl.concat(reject_parts)
