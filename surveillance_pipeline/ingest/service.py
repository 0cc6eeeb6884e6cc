"""Import and validate files end to end: the one implementation the CLI and the Dagster assets share."""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from surveillance_pipeline.config import Settings
from surveillance_pipeline.contract import REJECT_SCHEMA
from surveillance_pipeline.ingest.importer import (
    ImportOptions,
    PreparedSource,
    ValidationResult,
    iter_validated,
    make_context,
    prepare_source,
)
from surveillance_pipeline.ingest.presets import TRADES
from surveillance_pipeline.ingest.readers import LINE
from surveillance_pipeline.log import get_logger
from surveillance_pipeline.storage.database import Database

Progress = Callable[[int], None]  # called with the rows read so far
log = get_logger(__name__)


class StrictRejection(Exception):
    """Raised inside the import transaction so that a strict import that found bad rows rolls back."""


class RejectsFile:
    """Rejected rows appended to a temporary CSV, moved into place only when the import is complete."""

    def __init__(self, directory: Path, source: Path) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.path = directory / f"{source.name}.{stamp}.rejects.csv"
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._rows = 0
        directory.mkdir(parents=True, exist_ok=True)

    def append(self, rejects: pl.DataFrame) -> None:
        if not rejects.height:
            return
        with open(self._tmp, "a" if self._rows else "w", encoding="utf-8") as handle:
            rejects.write_csv(handle, include_header=self._rows == 0)
        self._rows += rejects.height

    def read_batches(self, rows: int = 100_000):
        """All rejects appended so far, in batches (the file may be larger than what is kept in memory)."""
        if self._rows:
            yield from pl.scan_csv(self._tmp, schema=REJECT_SCHEMA).collect_batches(chunk_size=rows)

    def commit(self) -> Path | None:
        if not self._rows:
            return None
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        if self._tmp.exists():
            self._tmp.unlink()


def _options_with_defaults(options: ImportOptions, settings: Settings) -> ImportOptions:
    mapping = {**settings.ingest.column_mapping, **options.mapping}
    return ImportOptions(options.kind, options.format, options.preset, mapping, options.symbol, options.strict,
                         options.batch_rows or settings.ingest.batch_rows)


def validate_file(path: Path | str, options: ImportOptions, settings: Settings,
                  progress: Progress | None = None) -> ValidationResult:
    """Validate a file without storing it: counts and reasons only."""
    options = _options_with_defaults(options, settings)
    prepared = prepare_source(path, options)
    ctx = make_context(prepared.generate_trade_ids, settings.ingest.min_timestamp, settings.ingest.max_future_seconds)
    result = _new_result(prepared, options)
    for rows_read, accepted, rejects in iter_validated(prepared, ctx, options.batch_rows):
        result.add(rows_read, accepted.height, rejects)
        if progress:
            progress(result.rows_read)
    if options.strict and result.rows_rejected:
        result.rows_accepted = 0
        result.rows_rejected = result.rows_read
    return result


def _new_result(prepared: PreparedSource, options: ImportOptions) -> ValidationResult:
    preset = prepared.preset.name if prepared.preset else None
    return ValidationResult(str(prepared.source.path), prepared.kind, preset, strict=options.strict)


def import_file(path: Path | str, options: ImportOptions, settings: Settings, database: Database,
                progress: Progress | None = None) -> ValidationResult:
    """Validate and store a file in one transaction; rejects go to the rejected_rows table and a CSV.

    Valid rows are stored even when others are bad, unless `options.strict`: then nothing is stored.
    Rows whose key is already stored (an earlier import) are rejected as duplicates.
    """
    options = _options_with_defaults(options, settings)
    prepared = prepare_source(path, options)
    result = _new_result(prepared, options)
    rejects_file = RejectsFile(settings.resolve(settings.paths.rejects_dir), prepared.source.path)
    try:
        with database.transaction() as conn:
            existing = database.existing_trade_keys if prepared.kind == TRADES else database.existing_order_keys
            ctx = make_context(prepared.generate_trade_ids, settings.ingest.min_timestamp, settings.ingest.max_future_seconds,
                               existing_keys=lambda keys: existing(keys, conn=conn))
            insert = database.insert_trades if prepared.kind == TRADES else database.insert_orders
            import_id = database.start_import(str(prepared.source.path), prepared.kind, conn=conn)
            for rows_read, accepted, rejects in iter_validated(prepared, ctx, options.batch_rows):
                result.add(rows_read, accepted.height, rejects)
                rejects_file.append(rejects)
                if rejects.height:
                    database.insert_rejects(import_id, rejects, conn=conn)
                if not (options.strict and result.rows_rejected):
                    insert(accepted.drop(LINE), import_id=import_id, conn=conn)
                if progress:
                    progress(result.rows_read)
            if options.strict and result.rows_rejected:
                raise StrictRejection
            database.finish_import(import_id, result.rows_read, result.rows_accepted, result.rows_rejected,
                                   result.status, conn=conn)
            result.import_id = import_id
            result.stored = result.rows_accepted > 0
    except StrictRejection:
        result.rows_accepted = 0
        result.rows_rejected = result.rows_read
        _record_strict_rejection(database, prepared, result, rejects_file)
    except BaseException:
        rejects_file.discard()
        raise
    result.rejects_path = rejects_file.commit()
    log.info("import finished", source=result.source, kind=result.kind, preset=result.preset, status=result.status,
             rows_read=result.rows_read, rows_accepted=result.rows_accepted, rows_rejected=result.rows_rejected,
             import_id=result.import_id, rejects_file=str(result.rejects_path) if result.rejects_path else None)
    return result


def _record_strict_rejection(database: Database, prepared: PreparedSource, result: ValidationResult,
                             rejects_file: RejectsFile) -> None:
    # The data transaction rolled back; the bookkeeping of the refusal is kept in its own transaction.
    with database.transaction() as conn:
        import_id = database.start_import(str(prepared.source.path), prepared.kind, conn=conn)
        for rejects in rejects_file.read_batches():
            database.insert_rejects(import_id, rejects, conn=conn)
        database.finish_import(import_id, result.rows_read, 0, result.rows_read, "rejected", conn=conn)
    result.import_id = import_id
