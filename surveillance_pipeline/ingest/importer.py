"""Preparing a file for import (format, preset, column mapping) and streaming it through validation."""
from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from surveillance_pipeline.contract import (
    ORDER_REQUIRED,
    ORDER_SCHEMA,
    REJECT_SCHEMA,
    TRADE_REQUIRED,
    TRADE_SCHEMA,
    Trade,
)
from surveillance_pipeline.ingest.presets import (
    ORDERS,
    TRADES,
    DeriveState,
    Preset,
    detect_headerless_preset,
    detect_preset,
    get_preset,
    looks_headerless,
)
from surveillance_pipeline.ingest.readers import (
    LINE,
    file_errors,
    ROW_ERROR,
    FileFormat,
    InputFileError,
    SourceFile,
    detect_format,
    read_batches,
    read_header,
)
from surveillance_pipeline.ingest.validation import ExistingKeys, ValidationContext, validate_orders, validate_trades

KEPT_REJECTS = 1_000  # rejects kept in memory for display; all of them go to the rejects file/table


@dataclass(frozen=True)
class ImportOptions:
    kind: str | None = None  # "trades" | "orders"; None: from the preset (trades without one)
    format: str | None = None
    preset: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)  # contract column -> source column
    symbol: str | None = None  # for single-market files whose rows carry no symbol
    strict: bool = False
    batch_rows: int = 0  # 0: the configured ingest.batch_rows


@dataclass(frozen=True)
class PreparedSource:
    """A file ready to stream: how to read it and how its columns map to the contract."""

    source: SourceFile
    kind: str
    preset: Preset | None
    mapping: dict[str, str]
    symbol: str | None
    header: tuple[str, ...]

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return TRADE_SCHEMA if self.kind == TRADES else ORDER_SCHEMA

    @property
    def generate_trade_ids(self) -> bool:
        return self.kind == TRADES and self.preset is not None and self.preset.generate_trade_ids


@dataclass
class ValidationResult:
    """The outcome of validating (and possibly importing) one file."""

    source: str
    kind: str
    preset: str | None
    strict: bool = False
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECT_SCHEMA))
    rejects_path: Path | None = None
    import_id: int | None = None
    stored: bool = False

    @property
    def status(self) -> str:
        if self.rows_read == 0:
            return "empty"
        if self.rows_accepted == 0:
            return "rejected"
        return "partial" if self.rows_rejected else "ok"

    def add(self, rows_read: int, accepted: int, rejects: pl.DataFrame) -> None:
        self.rows_read += rows_read
        self.rows_accepted += accepted
        self.rows_rejected += rejects.select(pl.col("line").n_unique()).item() if rejects.height else 0
        if self.rejects.height < KEPT_REJECTS and rejects.height:
            self.rejects = pl.concat([self.rejects, rejects.head(KEPT_REJECTS - self.rejects.height)])

    def summary(self) -> str:
        preset = f", preset {self.preset}" if self.preset else ""
        text = (
            f"{self.source} ({self.kind}{preset}): {self.rows_read} rows read, {self.rows_accepted} accepted, "
            f"{self.rows_rejected} rejected"
        )
        if self.strict and self.rows_rejected:
            text += " (strict: whole file rejected)"
        return text

    def reject_lines(self, limit: int = 20) -> list[str]:
        return [
            f"{r['source']}:{r['line']}: {r['field']}: {r['reason']}"
            for r in self.rejects.head(limit).iter_rows(named=True)
        ]


def _first_csv_row(source: SourceFile) -> list[str]:
    opener = gzip.open if source.compressed else open
    with file_errors(source), opener(source.path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
        for row in csv.reader(handle):
            if any(field.strip() for field in row):
                return [field.strip() for field in row]
    return []


def _resolve(mapping: dict[str, str], header: tuple[str, ...]) -> dict[str, str]:
    """Mapping sources matched to the header's own spelling (case-insensitive)."""
    spelled = {}
    for name in header:
        spelled.setdefault(name.lower(), name)
    return {target: spelled.get(source.lower(), source) for target, source in mapping.items()}


def prepare_source(path: Path | str, options: ImportOptions) -> PreparedSource:
    """Detect the format and preset, build the column mapping, and check the required columns."""
    path = Path(path)
    source = detect_format(path, options.format)
    if options.kind is not None and options.kind not in (TRADES, ORDERS):
        raise InputFileError(f"{path}: kind must be '{TRADES}' or '{ORDERS}', got {options.kind!r}")
    preset = get_preset(options.preset) if options.preset else None
    if source.format == FileFormat.CSV:
        first = _first_csv_row(source)
        if not first:
            raise InputFileError(f"{path}: empty file")
        if preset is None and looks_headerless(first):
            preset = detect_headerless_preset(len(first), path)
            if preset is None:
                raise InputFileError(
                    f"{path}: the file has no header line and no headerless preset has {len(first)} columns; "
                    "pass --preset"
                )
        if preset is not None and not preset.has_header:
            source = source.with_layout(False, preset.headerless_columns)
        header = tuple(first) if source.has_header else tuple(source.column_names or ())
    else:
        header = tuple(read_header(source))
        if not header:
            raise InputFileError(f"{path}: empty file (no records)")
    if preset is None:
        preset = detect_preset(list(header), path, options.kind)
        if preset is None and not options.mapping:
            raise InputFileError(
                f"{path}: no preset matches the columns ({', '.join(header)}); pass --preset NAME or map the "
                "columns (--map price=PX_COLUMN ...)"
            )
    kind = options.kind or (preset.kind if preset else TRADES)
    if preset is not None and preset.kind != kind:
        raise InputFileError(f"{path}: preset {preset.name} reads {preset.kind}, not {kind}")
    mapping = _resolve({**(preset.columns if preset else {}), **options.mapping}, header)
    prepared = PreparedSource(source, kind, preset, mapping, options.symbol, header)
    _check_required_columns(prepared)
    return prepared


def _check_required_columns(prepared: PreparedSource) -> None:
    probe = pl.DataFrame({name: [] for name in prepared.header}, schema={n: pl.String for n in prepared.header})
    probe = probe.with_columns(pl.lit(None, pl.Int64).alias(LINE))
    mapped = map_columns(probe, prepared, DeriveState())
    required = TRADE_REQUIRED if prepared.kind == TRADES else ORDER_REQUIRED
    for column in required:
        if column == Trade.TRADE_ID and prepared.generate_trade_ids:
            continue
        if column not in mapped.columns:
            source_column = prepared.mapping.get(column, column)
            found = ", ".join(prepared.header)
            raise InputFileError(
                f"{prepared.source.path}: missing required column '{column}' (looked for source column "
                f"'{source_column}'; found columns: {found})"
            )


def map_columns(batch: pl.DataFrame, prepared: PreparedSource, state: DeriveState) -> pl.DataFrame:
    """Rename source columns to the contract's, derive what the preset derives, keep everything a string."""
    targets = {t: s for t, s in prepared.mapping.items() if s in batch.columns}
    sources = set(targets.values())
    keep = [c for c in batch.columns if c not in targets and c not in sources and c not in (LINE, ROW_ERROR)]
    frame = batch.select(
        *[pl.col(s).alias(t) for t, s in targets.items()],
        *keep,
        LINE,
        *([ROW_ERROR] if ROW_ERROR in batch.columns else []),
    )
    if prepared.symbol:
        frame = frame.with_columns(pl.lit(prepared.symbol).alias(Trade.SYMBOL))
    if prepared.preset is not None:
        for derive in prepared.preset.derive:
            frame = derive(frame, prepared.source.path, state)
    if prepared.preset is not None and prepared.preset.normalise_symbol and Trade.SYMBOL in frame.columns:
        frame = frame.with_columns(
            pl.col(Trade.SYMBOL).str.replace(r":.*$", "").str.replace_all(r"[/\-_ ]", "").str.to_uppercase()
        )
    wanted = [c for c in prepared.schema if c in frame.columns]
    return frame.select(*wanted, LINE, *([ROW_ERROR] if ROW_ERROR in frame.columns else []))


def iter_raw(prepared: PreparedSource, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Mapped raw chunks: contract column names, string values, ``__line``."""
    state = DeriveState()
    for batch in read_batches(prepared.source, batch_rows):
        yield map_columns(batch, prepared, state)


def make_context(generate_trade_ids: bool, min_timestamp: datetime, max_future_seconds: int,
                 existing_keys: ExistingKeys | None = None, now: datetime | None = None) -> ValidationContext:
    now = now or datetime.now(timezone.utc)
    return ValidationContext(
        min_timestamp=min_timestamp,
        max_timestamp=now + timedelta(seconds=max_future_seconds),
        generate_trade_ids=generate_trade_ids,
        existing_keys=existing_keys,
    )


def validate_chunk(raw: pl.DataFrame, kind: str, ctx: ValidationContext,
                   source_name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    validate = validate_trades if kind == TRADES else validate_orders
    return validate(raw, ctx, source_name)


def iter_validated(prepared: PreparedSource, ctx: ValidationContext,
                   batch_rows: int) -> Iterator[tuple[int, pl.DataFrame, pl.DataFrame]]:
    """(rows read, accepted rows, rejects) per chunk; accepted rows keep ``__line``."""
    name = str(prepared.source.path)
    for raw in iter_raw(prepared, batch_rows):
        accepted, rejects = validate_chunk(raw, prepared.kind, ctx, name)
        yield raw.height, accepted, rejects
