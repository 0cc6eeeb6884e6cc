"""Streaming readers for CSV, JSON (array or lines), Excel and Parquet, plain or gzip-compressed.

Every reader yields frames of string columns (source names) plus a ``__line`` column: the line in a
text file (header counted), the row in an Excel sheet, or the 1-based record number in Parquet and
JSON arrays. Values stay strings here; parsing and validation happen in one place afterwards. Typed
timestamps (Parquet) become epoch microseconds, the text the timestamp parser reads fastest.
"""
from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import polars as pl

from surveillance_pipeline.ingest.parsing import EPOCH_MICROS

LINE = "__line"
BOM = b"\xef\xbb\xbf"
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
                stripped = chunk.removeprefix(BOM).lstrip()
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


@contextmanager
def file_errors(source: SourceFile) -> Iterator[None]:
    """Turn the ways a file can be unreadable into one clear InputFileError naming the file."""
    try:
        yield
    except EOFError as exc:
        raise InputFileError(f"{source.path}: truncated compressed file ({exc})") from None
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise InputFileError(f"{source.path}: corrupt compressed file ({exc})") from None
    except pl.exceptions.PolarsError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"{source.path}: not readable as {source.format.value}: {first_line}") from None


def read_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Stream the file as frames of at most `batch_rows` rows of strings plus ``__line``."""
    readers = {
        FileFormat.CSV: _csv_batches,
        FileFormat.JSONL: _jsonl_batches,
        FileFormat.JSON: _json_array_batches,
        FileFormat.EXCEL: _excel_batches,
        FileFormat.PARQUET: _parquet_batches,
    }
    with file_errors(source):
        yield from readers[source.format](source, batch_rows)


def _datetime_text(name: str, dtype: pl.Datetime) -> pl.Expr:
    """A typed timestamp (naive = UTC) as text the timestamp parser reads back cheaply and unambiguously:
    epoch microseconds where their magnitude reads as microseconds (1973-03-03 until the year 5138),
    ISO-8601 in UTC elsewhere (far-off values, typically the ones rejected, stay readable)."""
    value = pl.col(name).dt.convert_time_zone("UTC") if dtype.time_zone else pl.col(name)
    micros = value.dt.epoch("us")
    return (
        pl.when(micros.is_between(*EPOCH_MICROS, closed="left"))
        .then(micros.cast(pl.String))
        .otherwise(value.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    )


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return _datetime_text(name, dtype)
    if isinstance(dtype, pl.List):
        if dtype.inner == pl.String:
            return pl.col(name).list.join(",")
        # lists of numbers or objects (e.g. ccxt "fees"): kept as their JSON text
        return pl.struct(pl.col(name)).struct.json_encode().str.replace(r'^\{"[^"]*":(.*)\}$', "$1")
    return pl.col(name).cast(pl.String)


def _as_strings(frame: pl.DataFrame, lines: int | Sequence[int]) -> pl.DataFrame:
    """Flatten struct columns to ``parent.child``, cast everything to strings and number the rows.

    `lines` is the first row's line number (rows on consecutive lines) or every row's line number.
    """
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
    frame = frame.select(_as_text(name, dtype).alias(name.strip()) for name, dtype in frame.schema.items())
    if isinstance(lines, int):
        numbers = pl.int_range(lines, lines + frame.height, dtype=pl.Int64)
    else:
        numbers = pl.Series(LINE, list(lines), dtype=pl.Int64)
    return frame.with_columns(numbers.alias(LINE))


def _records(lines: list[bytes], first_line: int) -> tuple[list[bytes], list[int]]:
    """The chunk's lines without blank lines between records, and each record's first line number.

    A record continues on the next line while a quoted field is open (an odd number of quotes so far).
    """
    data = b"".join(lines)
    if b'"' not in data and b"\n\n" not in data and b"\n\r\n" not in data and lines[0].strip():
        return lines, list(range(first_line, first_line + len(lines)))
    kept, starts, inside = [], [], False
    for offset, line in enumerate(lines):
        if not inside:
            if not line.strip():
                continue
            starts.append(first_line + offset)
        kept.append(line)
        if line.count(b'"') % 2:
            inside = not inside
    return kept, starts


def _csv_frame(header: bytes, lines: list[bytes], starts: list[int], source: SourceFile) -> pl.DataFrame:
    try:
        frame = pl.read_csv(
            io.BytesIO(header + b"".join(lines)),
            has_header=source.has_header,
            infer_schema=False,
            new_columns=list(source.column_names) if source.column_names else None,
        )
    except pl.exceptions.ComputeError:
        # A malformed row (more fields than the header, bytes that are not UTF-8) fails the whole chunk
        # in polars: parse the chunk with the csv module instead so that only those rows are rejected.
        return _csv_frame_tolerant(header, lines, starts, source)
    if frame.height != len(starts):  # polars and the quote scan disagree: let the csv module decide
        return _csv_frame_tolerant(header, lines, starts, source)
    return _as_strings(frame, starts)


def _decode(line: bytes) -> tuple[str, str | None]:
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return line.decode("utf-8", errors="replace"), f"not UTF-8 text (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"


def _csv_frame_tolerant(header: bytes, lines: list[bytes], starts: list[int], source: SourceFile) -> pl.DataFrame:
    names = list(source.column_names) if source.column_names else None
    if names is None:
        names = [name.strip() for name in next(csv.reader([header.decode("utf-8", errors="replace")]))]
    decoded = [_decode(line) for line in lines]
    rows, errors = [], []
    position = 0  # which physical line each record starts on, to attribute decoding errors
    for record in csv.reader(text for text, _ in decoded):
        problem = decoded[min(position, len(decoded) - 1)][1]
        position += 1 + sum(field.count("\n") for field in record)
        if problem is None and len(record) > len(names):
            problem = f"expected {len(names)} fields, found {len(record)}"
        errors.append(problem)
        rows.append([None] * len(names) if problem else record + [None] * (len(names) - len(record)))
    numbers = starts[: len(rows)] + [starts[-1]] * max(0, len(rows) - len(starts))
    frame = pl.DataFrame(rows, schema={name: pl.String for name in names}, orient="row")
    return frame.with_columns(
        pl.Series(LINE, numbers, dtype=pl.Int64), pl.Series(ROW_ERROR, errors, dtype=pl.String)
    )


def _csv_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    # Line-chunked reading of a byte stream: works the same for plain and gzip files, and never holds
    # more than one chunk in memory. A chunk is extended until no quoted field is left open.
    with _open_binary(source) as handle:
        header = handle.readline().removeprefix(BOM) if source.has_header else b""
        if source.has_header and not header.strip():
            raise InputFileError(f"{source.path}: empty file (no header line)")
        line_number = 1 if source.has_header else 0
        first_chunk = True
        while True:
            lines = handle.readlines(_approx_bytes(batch_rows))
            if not lines:
                return
            if first_chunk and not source.has_header:
                lines[0] = lines[0].removeprefix(BOM)
            first_chunk = False
            while sum(line.count(b'"') for line in lines) % 2:
                more = handle.readline()
                if not more:
                    break
                lines.append(more)
            kept, starts = _records(lines, line_number + 1)
            line_number += len(lines)
            if kept:
                yield _csv_frame(header, kept, starts, source)


def _approx_bytes(batch_rows: int) -> int:
    return batch_rows * 100  # trade rows run ~60-150 bytes: chunks hold roughly batch_rows rows


def _jsonl_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    with _open_binary(source) as handle:
        next_line = 1
        while True:
            lines = handle.readlines(_approx_bytes(batch_rows))
            if not lines:
                return
            if next_line == 1:
                lines[0] = lines[0].removeprefix(BOM)
            numbers = [next_line + i for i, line in enumerate(lines) if line.strip()]
            next_line += len(lines)
            if numbers:  # blank lines are skipped; rows keep their real line numbers
                frame = pl.read_ndjson(io.BytesIO(b"".join(lines)), infer_schema_length=None)
                yield _as_strings(frame, numbers)


def _json_array_batches(source: SourceFile, batch_rows: int) -> Iterator[pl.DataFrame]:
    # A JSON array is one document: it is parsed whole (use JSON lines for very large files).
    with _open_binary(source) as handle:
        data = handle.read().removeprefix(BOM)
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
