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
from surveillance_pipeline.ingest.readers import LINE, ROW_ERROR
from surveillance_pipeline.ingest.validation import ExistingKeys, KeyTracker, ValidationContext

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


class PartWriter:
    """Numbered Parquet parts in a folder: a day's rows written chunk by chunk, read back as one scan."""

    def __init__(self, folder: Path, schema: dict[str, pl.DataType]) -> None:
        self.folder, self.schema, self.rows, self._parts = folder, schema, 0, 0
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height:
            frame.select(list(self.schema)).cast(self.schema).write_parquet(self.folder / f"part-{self._parts:05d}.parquet")
            self._parts += 1
            self.rows += frame.height

    def scan(self) -> pl.LazyFrame:
        if not self._parts:
            return pl.LazyFrame(schema=self.schema)
        return pl.scan_parquet(self.folder / "part-*.parquet")


def raw_schema(kind: str) -> dict[str, pl.DataType]:
    """Columns of a staged raw day: the contract's columns as text, plus where each row came from."""
    contract = TRADE_SCHEMA if kind == TRADES else ORDER_SCHEMA
    return {**{c: pl.String() for c in contract}, LINE: pl.Int64(), ROW_ERROR: pl.String(), SOURCE: pl.String(),
            GENERATE_IDS: pl.Boolean()}


def stage_raw_files(paths: list[Path], options: ImportOptions, settings: Settings, folder: Path) -> PartWriter:
    """Write every row of the files, mapped to contract names (text), as Parquet parts under `folder`,
    with ``__source``, ``__line`` and whether trade ids are generated: all that validation needs later,
    without reading the files again. Memory is bounded by one chunk."""
    kind = options.kind or TRADES
    parts = PartWriter(folder, raw_schema(kind))
    batch_rows = options.batch_rows or settings.ingest.batch_rows
    for path in paths:
        prepared = prepare_source(path, options)
        for raw in iter_raw(prepared, batch_rows):
            missing = [pl.lit(None, dtype).alias(c) for c, dtype in parts.schema.items() if c not in raw.columns]
            parts.write(raw.with_columns(*missing).with_columns(
                pl.lit(str(path)).alias(SOURCE), pl.lit(prepared.generate_trade_ids).alias(GENERATE_IDS)))
    return parts


def _off_day(accepted: pl.DataFrame, source: str, day: date) -> tuple[pl.Series, pl.DataFrame]:
    start = datetime.combine(day, time(), tzinfo=timezone.utc)
    stamp = accepted.get_column("timestamp")
    outside = (stamp < start) | (stamp >= start + timedelta(days=1))
    moved = accepted.filter(outside).select(
        pl.lit(source).alias(Reject.SOURCE), pl.col(LINE).alias(Reject.LINE),
        pl.lit("timestamp").alias(Reject.FIELD),
        pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ").alias(Reject.VALUE),
        pl.lit(f"not on the partition's day {day.isoformat()} (UTC)").alias(Reject.REASON),
    ).cast(REJECT_SCHEMA)
    return outside, moved


def validate_staged(raw: pl.LazyFrame, day: date, kind: str, settings: Settings, accepted: PartWriter,
                    rejects: PartWriter, existing_keys: ExistingKeys | None = None) -> None:
    """Validate a staged raw day chunk by chunk into `accepted` (typed rows of `day`) and `rejects`.

    Duplicates are looked for across all files of the day. Rows dated on another day are rejected:
    a file in a day's landing place must hold that day.
    """
    keys = KeyTracker()
    contexts: dict[tuple[str, bool], ValidationContext] = {}
    for chunk in raw.collect_batches(chunk_size=settings.ingest.batch_rows):
        for (source, generate_ids), rows in chunk.group_by(SOURCE, GENERATE_IDS, maintain_order=True):
            ctx = contexts.get((source, generate_ids))
            if ctx is None:
                ctx = make_context(bool(generate_ids), settings.ingest.min_timestamp,
                                   settings.ingest.max_future_seconds, existing_keys=existing_keys)
                ctx.keys = keys
                contexts[(source, generate_ids)] = ctx
            good, bad = validate_chunk(rows.drop(SOURCE, GENERATE_IDS), kind, ctx, source)
            outside, moved = _off_day(good, source, day)
            accepted.write(good.filter(~outside).drop(LINE))
            rejects.write(pl.concat([bad, moved]).sort(Reject.LINE))
