"""The shared PDF template: title block, "Page N of M" footers, tables that split with their header, images.

Page text comes from poppler's `pdftotext` where it is installed, else from a small reader of reportlab's
own output (text operators in the decoded page streams), so the checks run on any machine.
"""
from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from reportlab.platypus import Flowable, Image

from surveillance_pipeline.reporting.pdf import (
    FRAME_WIDTH,
    ReportDocument,
    fit_widths,
    format_value,
)

GENERATED = datetime(2026, 3, 12, 6, 0, tzinfo=UTC)


def page_texts(path: Path) -> list[str]:
    """The text of each page of a PDF, in page order."""
    data = path.read_bytes()
    assert data.startswith(b"%PDF-"), f"{path} is not a PDF"
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True).stdout
        return text.decode("utf-8").split("\f")[:-1]
    return _reportlab_page_texts(data)


def _reportlab_page_texts(data: bytes) -> list[str]:
    objects = {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj(.*?)endobj", data, re.DOTALL)}

    def decoded_stream(body: bytes) -> bytes:
        head, _, rest = body.partition(b"stream")
        raw = rest.rsplit(b"endstream", 1)[0].strip()
        if b"ASCII85Decode" in head:
            raw = base64.a85decode(raw, adobe=True)
        return zlib.decompress(raw) if b"FlateDecode" in head else raw

    def pages(number: int) -> list[bytes]:
        body = objects[number]
        if re.search(rb"/Type /Pages\b", body):
            kids = re.search(rb"/Kids \[(.*?)\]", body, re.DOTALL)[1]
            return [page for kid in re.findall(rb"(\d+) 0 R", kids) for page in pages(int(kid))]
        return [body]

    def unescape(match: re.Match) -> bytes:
        token = match[1]
        return bytes([int(token, 8)]) if token[:1].isdigit() else {b"n": b"\n"}.get(token, token)

    root = int(re.search(rb"/Pages (\d+) 0 R", data)[1])
    texts = []
    for page in pages(root):
        content = decoded_stream(objects[int(re.search(rb"/Contents (\d+) 0 R", page)[1])])
        # runs of one line (a bold word, a link) are shown one after another; a new line moves the text position
        pieces = []
        for shown, moved in re.findall(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj|(?<![A-Za-z])(Td|TD|T\*|Tm|BT)(?![A-Za-z])", content, re.DOTALL):
            if moved:
                pieces.append("\n")
            else:
                pieces.append(re.sub(rb"\\([0-7]{1,3}|.)", unescape, shown).decode("cp1252"))
        texts.append("".join(pieces).strip())
    return texts


def tiny_png(path: Path, width: int, height: int) -> Path:
    """A grey PNG of the given size, written without any imaging library."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def test_title_block_and_numbered_footer_on_every_page(tmp_path: Path) -> None:
    document = ReportDocument("Daily summary", "2026-03-02", generated_at=GENERATED)
    document.paragraph("First page.")
    document.page_break()
    document.paragraph("Second page.")
    document.page_break()
    document.heading("Third")
    path = document.write(tmp_path / "out" / "daily.pdf")

    pages = page_texts(path)
    assert len(pages) == 3
    assert "Daily summary" in pages[0] and "Period: 2026-03-02" in pages[0]
    assert "Generated 2026-03-12T06:00:00Z" in pages[0] and "Crypto market surveillance" in pages[0]
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of 3" in text
        assert "Generated 2026-03-12T06:00:00Z" in text
    assert "Crypto market surveillance" in pages[2]  # running header on later pages


def test_long_table_splits_across_pages_repeating_its_header(tmp_path: Path) -> None:
    document = ReportDocument("Account risk profile", generated_at=GENERATED)
    rows = [[f"acct-{i:03d}", 1000 + i, round(i / 7, 4), "note " * (i % 5)] for i in range(120)]
    document.heading("Accounts")
    document.table(["Account id", "Trade count", "Risk score", "Analyst note"], rows)
    path = document.write(tmp_path / "long.pdf")

    pages = page_texts(path)
    assert len(pages) >= 3
    body = "\n".join(pages)
    for i in range(120):  # every row once, none lost at a page break
        assert len(re.findall(rf"\bacct-{i:03d}\b", body)) == 1
    assert "acct-000" in pages[0]  # the heading does not push the whole table to page 2
    for number, text in enumerate(pages, start=1):
        assert "acct-" in text
        assert "Account id" in text and "Risk score" in text, f"page {number} lacks the repeated header"
        assert f"Page {number} of {len(pages)}" in text
    assert "1,119" in body and "16.857" in body  # thousands separators and three decimals


def test_long_cells_wrap_and_columns_fit_the_frame(tmp_path: Path) -> None:
    long_text = "the account alternated buy and sell orders against itself " * 12
    document = ReportDocument("Pattern analysis", generated_at=GENERATED)
    document.table(["Pattern", "Explanation", "Alerts"], [["wash_trading", long_text, 12], ["spoofing", "x", 3]])
    table = document.story[-2]
    assert sum(table._colWidths) == pytest.approx(FRAME_WIDTH)
    path = document.write(tmp_path / "wrap.pdf")
    text = " ".join(" ".join(page_texts(path)).split())
    assert "alternated buy and sell" in text


def test_fit_widths_gives_way_in_wide_columns_first() -> None:
    widths = fit_widths([50, 400, 40], [30, 60, 40], 300)
    assert sum(widths) == pytest.approx(300)
    assert widths[2] == pytest.approx(40)  # already at its minimum
    assert widths[1] > widths[0] >= 30
    assert fit_widths([50, 50], [10, 10], 300) == pytest.approx([150, 150])  # narrow tables stretch


def test_format_value() -> None:
    assert format_value(None) == "n/a"
    assert format_value(float("nan")) == "n/a"
    assert format_value(np.float64(0.91234)) == "0.912"
    assert format_value(np.int64(12345)) == "12,345"
    assert format_value(True) == "yes"
    assert format_value(0.5, float_digits=2) == "0.50"
    assert format_value("ensemble") == "ensemble"


def test_image_fits_the_frame_width_and_keeps_its_aspect_ratio(tmp_path: Path) -> None:
    document = ReportDocument("Charts", generated_at=GENERATED)
    document.image(tiny_png(tmp_path / "wide.png", 1200, 300), caption="A wide chart")
    image = document.story[-1]._content[0]
    assert image.drawWidth == pytest.approx(FRAME_WIDTH)
    assert image.drawWidth / image.drawHeight == pytest.approx(4.0)
    document.image(tiny_png(tmp_path / "tall.png", 200, 2000))  # taller than a page: scaled down to fit
    tall = document.story[-1]._content[0]
    assert tall.drawHeight < 800 and tall.drawWidth / tall.drawHeight == pytest.approx(0.1)
    assert "A wide chart" in page_texts(document.write(tmp_path / "charts.pdf"))[0]


def test_headings_just_before_an_image_stay_on_its_page(tmp_path: Path) -> None:
    document = ReportDocument("Charts", generated_at=GENERATED)
    document.paragraph("Intro.")
    document.heading("Curves")
    document.heading("ROC", level=2)
    document.image(tiny_png(tmp_path / "chart.png", 900, 675))
    block = document.story[-1]._content
    assert [getattr(f, "text", None) for f in block[:2]] == ["Curves", "ROC"]
    assert isinstance(block[2], Image)
    assert document.story[-2].text == "Intro."


class _Explodes(Flowable):
    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        raise RuntimeError("broken flowable")


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = ReportDocument("First", generated_at=GENERATED).write(tmp_path / "report.pdf")
    before = path.read_bytes()
    broken = ReportDocument("Second", generated_at=GENERATED)
    broken.story.append(_Explodes())
    with pytest.raises(RuntimeError, match="broken flowable"):
        broken.write(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]


def test_rows_must_match_the_header(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        ReportDocument("Bad").table(["a", "b"], [[1, 2], [3]])


def test_trailing_space_does_not_start_a_blank_page(tmp_path: Path) -> None:
    document = ReportDocument("Spacing", generated_at=GENERATED)
    document.paragraph("The only content.")
    document.table(["a"], [[1]])  # a table ends with a spacer of its own
    document.spacer(250)  # taller than what is left of the page
    document.page_break()
    pages = page_texts(document.write(tmp_path / "spacing.pdf"))
    assert len(pages) == 1 and "Page 1 of 1" in pages[0]
    assert len(document.story) > 4  # the story itself is left as it was


def test_cell_fills_tint_single_cells(tmp_path: Path) -> None:
    document = ReportDocument("Fills", generated_at=GENERATED)
    document.table(["Risk", "Score"], [["HIGH", 0.9], ["LOW", 0.2]], cell_fills={(0, 0): "#f6d0d0"})
    commands = document.story[-2]._bkgrndcmds
    assert ("BACKGROUND", (0, 1), (0, 1)) in [tuple(c[:3]) for c in commands]
    assert "HIGH" in page_texts(document.write(tmp_path / "fills.pdf"))[0]
