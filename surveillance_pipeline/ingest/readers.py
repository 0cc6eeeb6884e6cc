"""Streaming readers for CSV, JSON (array or lines), Excel and Parquet, plain or gzip-compressed.

Every reader yields frames of string columns (source names) plus a ``__line`` column: the line in a
text file (header counted), the row in an Excel sheet, or the 1-based record number in Parquet and
JSON arrays. Values stay strings here; parsing and validation happen in one place afterwards.
"""
from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import polars as pl

LINE = "__line"
ROW_ERROR = "__row_error"  # set by a reader when a row's structure is broken (e.g. too many fields)


class FileFormat(StrEnum):
    CSV = "csv"
    JSON = "json"  # a JSON array of objects
    JSONL = "jsonl"  # one JSON object per line
    EXCEL = "xlsx"
    PARQUET = "parquet"


class InputFileError(ValueError):
    """A file that cannot be read at all: wrong format, truncated, missing columns."""


_EXTENSIONS = {
    ".csv": FileFormat.CSV,
    ".txt": FileFormat.CSV,
    ".json": FileFormat.JSON,
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".xlsx": FileFormat.EXCEL,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
}


@dataclass(frozen=True)
class SourceFile:
    """A file and how to read it."""

    path: Path
    format: FileFormat
    compressed: bool
    has_header: bool = True
    column_names: tuple[str, ...] | None = None  # for headerless CSV

    def with_layout(self, has_header: bool, column_names: tuple[str, ...] | None) -> SourceFile:
        return SourceFile(self.path, self.format, self.compressed, has_header, column_names)


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def detect_format(path: Path, explicit: str | None = None) -> SourceFile:
    """The file's format from `explicit` or its extension (``.gz`` stripped); gzip by magic bytes."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file")
    compressed = is_gzip(path)
    if explicit:
        try:
            fmt = FileFormat(explicit.lower().lstrip("."))
        except ValueError:
            choices = ", ".join(f.value for f in FileFormat)
            raise InputFileError(f"{path}: unknown format {explicit!r}; expected one of {choices}") from None
    else:
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes = suffixes[:-1]
        if not suffixes or suffixes[-1] not in _EXTENSIONS:
            raise InputFileError(
                f"{path}: cannot tell the format from the extension; pass --format "
                f"({', '.join(f.value for f in FileFormat)})"
            )
        fmt = _EXTENSIONS[suffixes[-1]]
    if fmt == FileFormat.JSON and _first_byte(path, compressed) == b"{":
        fmt = FileFormat.JSONL
    return SourceFile(path, fmt, compressed)


def _open_binary(source: SourceFile):
    return gzip.open(source.path, "rb") if source.compressed else open(source.path, "rb")


def _first_byte(path: Path, compressed: bool) -> bytes:
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            for chunk in iter(lambda: handle.read(4096), b""):
                stripped = chunk.lstrip()
                if stripped:
                    return stripped[:1]
    except (OSError, EOFError, zlib.error):
        return b""
    return b""


def read_header(source: SourceFile) -> list[str]:
    """Column names as the file presents them (nested JSON/Parquet struct fields as ``parent.child``)."""
    for batch in read_batches(source, batch_rows=50):
        return [c for c in batch.columns if c not in (LINE, ROW_ERROR)]
    return []


def read_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Stream the file as frames of at most `batch_rows` rows of strings plus ``__line``."""
    readers = {
        FileFormat.CSV: _csv_batches,
        FileFormat.JSONL: _jsonl_batches,
        FileFormat.JSON: _json_array_batches,
        FileFormat.EXCEL: _excel_batches,
        FileFormat.PARQUET: _parquet_batches,
    }
    try:
        yield from readers[source.format](source, batch_rows)
    except EOFError as exc:
        raise InputFileError(f"{source.path}: truncated compressed file ({exc})") from None
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise InputFileError(f"{source.path}: corrupt compressed file ({exc})") from None
    except pl.exceptions.PolarsError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"{source.path}: not readable as {source.format.value}: {first_line}") from None


def _as_strings(frame: pl.DataFrame, first_line: int) -> pl.DataFrame:
    """Flatten struct columns to ``parent.child``, cast everything to strings and number the rows."""
    while any(isinstance(dtype, pl.Struct) for dtype in frame.dtypes):
        columns = []
        for name, dtype in frame.schema.items():
            if isinstance(dtype, pl.Struct):
                columns.extend(
                    pl.col(name).struct.field(field.name).alias(f"{name}.{field.name}") for field in dtype.fields
                )
            else:
                columns.append(pl.col(name))
        frame = frame.select(columns)
    casts = [
        pl.col(name).cast(pl.String) if not isinstance(dtype, pl.List) else pl.col(name).list.join(",").alias(name)
        for name, dtype in frame.schema.items()
    ]
    return frame.select(casts).with_columns(
        pl.int_range(first_line, first_line + frame.height, dtype=pl.Int64).alias(LINE)
    )


def _csv_frame(header: bytes, lines: list[bytes], source: SourceFile, first_line: int) -> pl.DataFrame:
    try:
        frame = pl.read_csv(
            io.BytesIO(header + b"".join(lines)),
            has_header=source.has_header,
            infer_schema=False,
            new_columns=list(source.column_names) if source.column_names else None,
        )
    except pl.exceptions.ComputeError:
        # A malformed row (more fields than the header) fails the whole chunk in polars: parse the
        # chunk with the csv module instead so that only the malformed rows are rejected.
        return _csv_frame_tolerant(header, lines, source, first_line)
    return _as_strings(frame, first_line)


def _csv_frame_tolerant(header: bytes, lines: list[bytes], source: SourceFile, first_line: int) -> pl.DataFrame:
    text = [line.decode("utf-8", errors="replace") for line in lines]
    names = list(source.column_names) if source.column_names else None
    if names is None:
        names = next(csv.reader([header.decode("utf-8", errors="replace")]))
    rows, errors, numbers = [], [], []
    for offset, record in enumerate(csv.reader(text)):
        numbers.append(first_line + offset)
        if len(record) > len(names):
            errors.append(f"expected {len(names)} fields, found {len(record)}")
            rows.append([None] * len(names))
        else:
            errors.append(None)
            rows.append(record + [None] * (len(names) - len(record)))
    frame = pl.DataFrame(rows, schema={name: pl.String for name in names}, orient="row")
    return frame.with_columns(
        pl.Series(LINE, numbers, dtype=pl.Int64), pl.Series(ROW_ERROR, errors, dtype=pl.String)
    )


def _csv_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    # Line-chunked reading of a byte stream: works the same for plain and gzip files, and never
    # holds more than one chunk in memory.
    header_lines = 1 if source.has_header else 0
    with _open_binary(source) as handle:
        header = handle.readline() if source.has_header else b""
        if source.has_header and not header.strip():
            raise InputFileError(f"{source.path}: empty file (no header line)")
        next_line = 1 + header_lines
        while True:
            lines = handle.readlines(_approx_bytes(batch_rows))
            if not lines:
                return
            yield _csv_frame(header, lines, source, next_line)
            next_line += len(lines)


def _approx_bytes(batch_rows: int) -> int:
    return batch_rows * 100  # trade rows run ~60-150 bytes: chunks hold roughly batch_rows rows


def _jsonl_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    with _open_binary(source) as handle:
        next_line = 1
        while True:
            lines = handle.readlines(_approx_bytes(batch_rows))
            if not lines:
                return
            frame = pl.read_ndjson(io.BytesIO(b"".join(lines)), infer_schema_length=None)
            blank = [i for i, line in enumerate(lines) if not line.strip()]
            strings = _as_strings(frame, next_line)
            if blank:  # blank lines are skipped by the parser: renumber to the real line numbers
                real = [next_line + i for i, line in enumerate(lines) if line.strip()]
                strings = strings.with_columns(pl.Series(LINE, real, dtype=pl.Int64))
            yield strings
            next_line += len(lines)


def _json_array_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    # A JSON array is one document: it is parsed whole (use JSON lines for very large files).
    with _open_binary(source) as handle:
        data = handle.read()
    frame = pl.read_json(io.BytesIO(data), infer_schema_length=None)
    for offset in range(0, frame.height, batch_rows):
        yield _as_strings(frame.slice(offset, batch_rows), offset + 1)


def _excel_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    if source.compressed:
        raise InputFileError(f"{source.path}: gzip-compressed Excel files are not supported; unzip it first")
    try:
        frame = pl.read_excel(source.path, engine="openpyxl", infer_schema_length=0)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/ValueError variants for non-xlsx input
        raise InputFileError(f"{source.path}: not readable as xlsx: {exc}") from None
    first = 2 if source.has_header else 1  # sheet rows are 1-based, after the header row
    for offset in range(0, frame.height, batch_rows):
        yield _as_strings(frame.slice(offset, batch_rows), offset + first)


def _parquet_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    if source.compressed:
        raise InputFileError(f"{source.path}: gzip-compressed Parquet is not supported (Parquet compresses itself)")
    next_record = 1
    for frame in pl.scan_parquet(source.path).collect_batches(chunk_size=batch_rows):
        if frame.height:
            yield _as_strings(frame, next_record)
            next_record += frame.height
