"""The page template every PDF report shares: A4 portrait, Helvetica, title block, running header, numbered footer.

`ReportDocument` collects headings, paragraphs, tables and images, then `write()` renders them with reportlab
platypus into one file, atomically. The footer's "Page N of M" needs the page count before the first page
is final, so pages are drawn through `NumberedCanvas`, which holds them until `save()`.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    Image,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

PROJECT_NAME = "Crypto market surveillance"
PAGE_SIZE = A4
MARGIN = 18 * mm
HEADER_BASELINE = A4[1] - 11 * mm  # running header sits inside the top margin, clear of the frame
FOOTER_BASELINE = 10 * mm
FRAME_WIDTH = PAGE_SIZE[0] - 2 * MARGIN
FRAME_HEIGHT = PAGE_SIZE[1] - 2 * MARGIN
MISSING = "n/a"
HEADING_ROOM_MM = {1: 40, 2: 28}  # a heading starts a new page unless this much room is left below it

FONT, FONT_BOLD, FONT_ITALIC = "Helvetica", "Helvetica-Bold", "Helvetica-Oblique"
INK = colors.HexColor("#1f2933")
MUTED = colors.HexColor("#616e7c")
RULE = colors.HexColor("#9aa5b1")
HEADER_FILL = colors.HexColor("#e4e7eb")
BAND_FILL = colors.HexColor("#f5f7fa")
HIGHLIGHT_FILL = colors.HexColor("#fff3c4")

_TABLE_FONT_SIZE = 8.0
_CELL_PAD_X = 4.0
_NUMERIC_TEXT = re.compile(r"^[+-]?(\d[\d,]*\.?\d*|\.\d+)(e[+-]?\d+)?%?$", re.IGNORECASE)

STYLES: dict[str, ParagraphStyle] = {
    "title": ParagraphStyle("title", fontName=FONT_BOLD, fontSize=18, leading=22, textColor=INK, spaceAfter=4),
    "subtitle": ParagraphStyle("subtitle", fontName=FONT, fontSize=11, leading=14, textColor=INK, spaceAfter=2),
    "meta": ParagraphStyle("meta", fontName=FONT, fontSize=8.5, leading=11, textColor=MUTED, spaceAfter=10),
    "h1": ParagraphStyle("h1", fontName=FONT_BOLD, fontSize=13, leading=16, textColor=INK, spaceBefore=10,
                         spaceAfter=5),
    "h2": ParagraphStyle("h2", fontName=FONT_BOLD, fontSize=10.5, leading=13, textColor=INK, spaceBefore=7,
                         spaceAfter=4),
    "body": ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=13, textColor=INK, spaceAfter=6),
    "caption": ParagraphStyle("caption", fontName=FONT_ITALIC, fontSize=8, leading=10, textColor=MUTED,
                              alignment=TA_CENTER, spaceBefore=2, spaceAfter=8),
    "cell": ParagraphStyle("cell", fontName=FONT, fontSize=_TABLE_FONT_SIZE, leading=10, textColor=INK),
    "cell_bold": ParagraphStyle("cell_bold", fontName=FONT_BOLD, fontSize=_TABLE_FONT_SIZE, leading=10,
                                textColor=INK),
}


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO-8601 UTC to the second, e.g. 2026-03-12T06:00:00Z (naive datetimes are taken as UTC)."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_value(value: Any, float_digits: int = 3) -> str:
    """One table cell as text: None/NaN -> "n/a", bools -> yes/no, ints with thousands separators."""
    if value is None:
        return MISSING
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # numpy scalars format like the Python numbers they hold
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return MISSING if math.isnan(value) else f"{value:,.{float_digits}f}"
    return str(value)


def _is_numpy_number(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iuf"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float) or _is_numpy_number(value):
        return True
    return isinstance(value, str) and bool(_NUMERIC_TEXT.match(value.strip()))


def _numeric_column(values: Iterable[Any]) -> bool:
    """A column is numeric when every present value is a number (missing values do not count)."""
    present = [v for v in values if v is not None and v != "" and v != MISSING]
    return bool(present) and all(_is_number(v) for v in present)


def fit_widths(natural: Sequence[float], minimum: Sequence[float], available: float) -> list[float]:
    """Column widths summing to `available`: wide columns give way first, never below their minimum."""
    total = sum(natural)
    if total <= available:
        return [w * available / total for w in natural] if total else [available / len(natural)] * len(natural)
    floor = [min(m, n) for m, n in zip(minimum, natural, strict=True)]
    spare = available - sum(floor)
    if spare <= 0:  # even the longest words do not fit: shrink proportionally and let words split
        return [w * available / sum(floor) for w in floor]
    wants = [n - f for n, f in zip(natural, floor, strict=True)]
    return [f + w * spare / sum(wants) for f, w in zip(floor, wants, strict=True)]


class NumberedCanvas(Canvas):
    """Canvas that holds every page until `save()` so the footer can say "Page N of M"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page_states: list[dict[str, Any]] = []

    def showPage(self) -> None:  # reportlab's hook name
        self._page_states.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._page_states)
        for state in self._page_states:
            self.__dict__.update(state)
            self._draw_page_number(total)
            super().showPage()
        super().save()

    def _draw_page_number(self, total: int) -> None:
        self.saveState()
        self.setFont(FONT, 8)
        self.setFillColor(MUTED)
        self.drawRightString(self._pagesize[0] - MARGIN, FOOTER_BASELINE, f"Page {self._pageNumber} of {total}")
        self.restoreState()


class ReportDocument:
    """A report in the project's house style; add content in reading order, then `write(path)`.

    `story` is the list of platypus flowables, open for content the helpers do not cover.
    """

    def __init__(self, title: str, period: str | None = None, *, subtitle: str | None = None,
                 project: str = PROJECT_NAME, generated_at: datetime | None = None) -> None:
        self.title = title
        self.period = period
        self.project = project
        self.generated = utc_timestamp(generated_at)
        self.story: list[Flowable] = [Paragraph(escape(title), STYLES["title"])]
        lines = [f"Period: {period}" if period else None, subtitle]
        for line in filter(None, lines):
            self.story.append(Paragraph(escape(line), STYLES["subtitle"]))
        self.story.append(Paragraph(escape(f"Generated {self.generated} · {project}"), STYLES["meta"]))

    def heading(self, text: str, level: int = 1) -> None:
        # a page break when too little room is left, rather than keepWithNext: that would push a long table
        # (which may split) whole onto the next page
        self.story.append(CondPageBreak(HEADING_ROOM_MM[min(level, 2)] * mm))
        heading = Paragraph(escape(text), STYLES["h1" if level <= 1 else "h2"])
        heading.report_heading = True  # an image that follows pulls it onto its own page
        self.story.append(heading)

    def paragraph(self, text: str, *, markup: bool = False) -> None:
        """Body text; with `markup=True` the text is reportlab mini-HTML (<b>, <i>) and must escape its own data."""
        self.story.append(Paragraph(text if markup else escape(text), STYLES["body"]))

    def spacer(self, height_mm: float = 4) -> None:
        self.story.append(Spacer(1, height_mm * mm))

    def page_break(self) -> None:
        self.story.append(PageBreak())

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]], *, float_digits: int = 3,
              align: Sequence[str] | None = None, highlight_rows: Iterable[int] = (),
              width_mm: float | None = None, empty_text: str = "No rows.",
              cell_fills: Mapping[tuple[int, int], Any] | None = None) -> None:
        """A table as wide as the frame (or `width_mm`) that splits across pages, repeating its header row.

        Cells are formatted by `format_value`; columns whose values are all numbers are right-aligned
        unless `align` gives "left"/"right"/"center" per column. `highlight_rows` (0-based data row indexes)
        are set in bold on a tinted band. `cell_fills` maps (data row, column), both 0-based, to a background
        colour (a reportlab colour or "#rrggbb"), e.g. to tint a risk-level cell.
        """
        body = [list(row) for row in rows]
        columns = len(header)
        if any(len(row) != columns for row in body):
            raise ValueError(f"table {list(header)!r}: every row needs {columns} cells")
        if not body:
            self.paragraph(empty_text)
            return
        if align is None:
            align = ["right" if _numeric_column(row[c] for row in body) else "left" for c in range(columns)]
        texts = [[format_value(v, float_digits) for v in row] for row in body]
        highlighted = set(highlight_rows)
        width = min(FRAME_WIDTH, width_mm * mm) if width_mm else FRAME_WIDTH
        widths = fit_widths(*_column_extents(header, texts, width), width)
        alignment = {"left": TA_LEFT, "right": TA_RIGHT, "center": TA_CENTER}
        cell_styles = [
            (ParagraphStyle(f"c{c}", parent=STYLES["cell"], alignment=alignment[a]),
             ParagraphStyle(f"b{c}", parent=STYLES["cell_bold"], alignment=alignment[a]))
            for c, a in enumerate(align)
        ]
        data = [[Paragraph(escape(str(h)), cell_styles[c][1]) for c, h in enumerate(header)]]
        for r, row in enumerate(texts):
            data.append([Paragraph(escape(t), cell_styles[c][r in highlighted]) for c, t in enumerate(row)])
        commands: list[tuple[Any, ...]] = [
            ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, BAND_FILL]),
            ("LINEBELOW", (0, 0), (-1, 0), 0.8, RULE),
            ("LINEBELOW", (0, -1), (-1, -1), 0.8, RULE),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), _CELL_PAD_X),
            ("RIGHTPADDING", (0, 0), (-1, -1), _CELL_PAD_X),
            ("TOPPADDING", (0, 0), (-1, -1), 2.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ]
        commands += [("BACKGROUND", (0, r + 1), (-1, r + 1), HIGHLIGHT_FILL) for r in sorted(highlighted)]
        for (r, c), fill in (cell_fills or {}).items():
            fill = colors.HexColor(fill) if isinstance(fill, str) else fill
            commands.append(("BACKGROUND", (c, r + 1), (c, r + 1), fill))
        table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
        table.setStyle(TableStyle(commands))
        self.story += [table, Spacer(1, 3 * mm)]

    def image(self, path: str | Path, *, width_mm: float | None = None, caption: str | None = None,
              heading: str | None = None) -> None:
        """A PNG scaled to the frame width (or `width_mm`, whichever is smaller), aspect ratio kept.

        `heading`, `caption` and any headings added just before are kept on the same page as the image.
        """
        pixel_width, pixel_height = ImageReader(str(path)).getSize()
        width = min(FRAME_WIDTH, width_mm * mm if width_mm else FRAME_WIDTH)
        height = width * pixel_height / pixel_width
        tallest = FRAME_HEIGHT - 60  # room for headings and a caption on the same page
        if height > tallest:
            width, height = width * tallest / height, tallest
        block: list[Flowable] = []
        while self.story and (isinstance(self.story[-1], CondPageBreak)
                              or getattr(self.story[-1], "report_heading", False)):
            taken = self.story.pop()
            if not isinstance(taken, CondPageBreak):
                block.insert(0, taken)
        if heading:
            block.append(Paragraph(escape(heading), STYLES["h2"]))
        block.append(Image(str(path), width=width, height=height, hAlign="CENTER"))
        if caption:
            block.append(Paragraph(escape(caption), STYLES["caption"]))
        else:
            block.append(Spacer(1, 4 * mm))
        self.story.append(KeepTogether(block))

    def write(self, path: str | Path) -> Path:
        """Render to `path` atomically: a temporary file in the same folder, then os.replace."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        try:
            self._document(temporary).build(_without_trailing_space(self.story), canvasmaker=NumberedCanvas)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    def _document(self, filename: str) -> BaseDocTemplate:
        document = BaseDocTemplate(
            filename, pagesize=PAGE_SIZE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
            bottomMargin=MARGIN, title=self.title, author=self.project, subject=self.period or "",
            creator=self.project,
        )
        frame = Frame(MARGIN, MARGIN, FRAME_WIDTH, FRAME_HEIGHT, leftPadding=0, rightPadding=0, topPadding=0,
                      bottomPadding=0, id="body")
        document.addPageTemplates([
            PageTemplate("first", [frame], onPage=self._decorate_first, autoNextPageTemplate="later"),
            PageTemplate("later", [frame], onPage=self._decorate_later),
        ])
        return document

    def _decorate_first(self, canvas: Canvas, document: BaseDocTemplate) -> None:
        self._footer(canvas)

    def _decorate_later(self, canvas: Canvas, document: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.setFillColor(MUTED)
        canvas.drawString(MARGIN, HEADER_BASELINE, self.project)
        title = self.title if not self.period else f"{self.title} · {self.period}"
        canvas.drawRightString(PAGE_SIZE[0] - MARGIN, HEADER_BASELINE, _clip(title, FRAME_WIDTH * 0.6, 8))
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, HEADER_BASELINE - 2.5 * mm, PAGE_SIZE[0] - MARGIN, HEADER_BASELINE - 2.5 * mm)
        canvas.restoreState()
        self._footer(canvas)

    def _footer(self, canvas: Canvas) -> None:
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, FOOTER_BASELINE + 3.5 * mm, PAGE_SIZE[0] - MARGIN, FOOTER_BASELINE + 3.5 * mm)
        canvas.setFont(FONT, 8)
        canvas.setFillColor(MUTED)
        canvas.drawString(MARGIN, FOOTER_BASELINE, f"Generated {self.generated}")
        canvas.restoreState()


def _without_trailing_space(story: list[Flowable]) -> list[Flowable]:
    """The story without the spacers and breaks at its end: on a full last page they would start a blank one."""
    story = list(story)
    while story and isinstance(story[-1], Spacer | CondPageBreak | PageBreak):
        story.pop()
    return story


def _column_extents(header: Sequence[str], texts: list[list[str]], width: float) -> tuple[list[float], list[float]]:
    """Natural (widest cell) and minimum (longest word, or the whole header) width per column, with padding."""
    pad = 2 * _CELL_PAD_X + 1
    natural, minimum = [], []
    sample = texts[:500]  # long tables: the first rows are enough to size the columns
    for c, name in enumerate(header):
        cells = [(str(name), FONT_BOLD)] + [(row[c], FONT) for row in sample]
        natural.append(max(stringWidth(t, f, _TABLE_FONT_SIZE) for t, f in cells) + pad)
        longest_word = max(stringWidth(w, f, _TABLE_FONT_SIZE) for t, f in cells for w in t.split() or [""])
        whole_header = stringWidth(str(name), FONT_BOLD, _TABLE_FONT_SIZE)
        minimum.append(min(max(longest_word, whole_header) + pad, width * 0.4))
    return natural, minimum


def _clip(text: str, width: float, size: float) -> str:
    """Shorten text with an ellipsis to fit `width` points at `size`."""
    if stringWidth(text, FONT, size) <= width:
        return text
    while text and stringWidth(text + "…", FONT, size) > width:
        text = text[:-1]
    return text + "…"
