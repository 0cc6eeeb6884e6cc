"""Charts for the reports, drawn with matplotlib's Agg backend into PNG files (written atomically).

Model reports: ROC and precision-recall charts. Each takes `curves`: model name -> (y_true, scores) on one
split, one line per model. A model whose labels hold a single class has no curve; it is named in the
legend's title instead of failing the report.

Analyst reports (daily summary, account profile, pattern analysis): score histogram, activity timeline with
alert windows, hour-of-day x weekday heatmap, risk-level bars, pattern trend and mix, score history and
feature percentiles. Risk levels keep one colour everywhere (`RISK_COLORS`), patterns too (`pattern_colors`).
Every chart draws a note instead of failing when it has nothing to show.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on the servers; must precede the pyplot import

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]

FIGURE_SIZE_IN = (6.0, 4.5)
DPI = 150
_CHANCE_STYLE = {"color": "0.45", "linestyle": "--", "linewidth": 1.0}


def roc_curves(curves: Curves, path: str | Path, *, title: str = "ROC curve") -> Path:
    """One ROC line per model with its AUC in the legend, over the chance diagonal; saved as PNG."""
    usable, skipped = _usable(curves)
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
    try:
        for name, (y_true, scores) in usable.items():
            false_positive_rate, true_positive_rate, _ = roc_curve(y_true, scores)
            auc = roc_auc_score(y_true, scores)
            axes.plot(false_positive_rate, true_positive_rate, linewidth=1.8, label=f"{name} (AUC {auc:.3f})")
        axes.plot([0, 1], [0, 1], label="Chance (AUC 0.500)", zorder=1, **_CHANCE_STYLE)
        axes.set_xlabel("False positive rate")
        axes.set_ylabel("True positive rate (recall)")
        _finish(axes, title, skipped, legend_location="lower right")
        return _save(figure, Path(path))
    finally:
        plt.close(figure)


def pr_curves(curves: Curves, path: str | Path, *, title: str = "Precision-recall curve") -> Path:
    """One precision-recall line per model with its average precision in the legend, over the positive share."""
    usable, skipped = _usable(curves)
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
    try:
        for name, (y_true, scores) in usable.items():
            precision, recall, _ = precision_recall_curve(y_true, scores)
            average_precision = average_precision_score(y_true, scores)
            # step drawing matches how average precision sums the curve
            axes.step(recall, precision, where="post", linewidth=1.8, label=f"{name} (AP {average_precision:.3f})")
        if usable:
            positive_share = float(np.mean(np.concatenate([y for y, _ in usable.values()])))
            axes.axhline(positive_share, label=f"Chance (positive share {positive_share:.3f})", zorder=1,
                         **_CHANCE_STYLE)
        axes.set_xlabel("Recall")
        axes.set_ylabel("Precision")
        # below the axes: PR curves run along the top and the chance line along the bottom
        _finish(axes, title, skipped, legend_location="upper center", legend_below=True)
        return _save(figure, Path(path))
    finally:
        plt.close(figure)


def _usable(curves: Curves) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Models that can have a curve, and the names of those that cannot (one class, or no rows)."""
    usable, skipped = {}, []
    for name, (y_true, scores) in curves.items():
        labels = np.asarray(y_true).astype(int).ravel()
        values = np.asarray(scores, dtype=float).ravel()
        if labels.shape != values.shape:
            raise ValueError(f"curve {name!r}: {labels.size} labels but {values.size} scores; expected one score per label")
        if not np.isfinite(values).all():
            raise ValueError(f"curve {name!r}: scores hold NaN or infinite values; expected finite scores")
        if np.unique(labels).size < 2:
            skipped.append(name)
        else:
            usable[name] = (labels, values)
    return usable, skipped


def _finish(axes: plt.Axes, title: str, skipped: list[str], *, legend_location: str,
            legend_below: bool = False) -> None:
    axes.set_title(title)
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.02)
    axes.grid(True, linewidth=0.5, alpha=0.5)
    note = f"Not drawn (one class only): {', '.join(skipped)}" if skipped else None
    handles, _ = axes.get_legend_handles_labels()
    if not handles:  # nothing to draw: say why in the plot area
        axes.text(0.5, 0.5, note or "No scores to draw", ha="center", va="center", fontsize=9,
                  transform=axes.transAxes, wrap=True)
        return
    options = {"fontsize": 8, "title": note, "title_fontsize": 8, "framealpha": 0.9}
    if legend_below:
        options |= {"bbox_to_anchor": (0.5, -0.16), "ncol": 2 if len(handles) > 3 else 1}
    axes.legend(loc=legend_location, **options)


def _save(figure: Figure, path: Path) -> Path:
    """Write the PNG to a temporary file beside `path`, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        figure.savefig(temporary, format="png", dpi=DPI)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


# ---- analyst reports ------------------------------------------------------------------------------------

RISK_ORDER = ("HIGH", "MEDIUM", "LOW")
RISK_COLORS = {"HIGH": "#d64545", "MEDIUM": "#f0922b", "LOW": "#7b93ab"}
# patterns: hues that stay clear of the risk colours (no red, no orange)
_PATTERN_PALETTE = {
    "wash_trading": "#1f77b4", "circular_trading": "#17becf", "pump_and_dump": "#9467bd", "spoofing": "#2ca02c",
    "layering": "#bcbd22", "quote_stuffing": "#8c564b", "excessive_trading": "#e377c2", "ml_anomaly": "#7f7f7f",
    "funding_rate_manipulation": "#aec7e8", "liquidation_hunting": "#98df8a", "basis_manipulation": "#c5b0d5",
    "position_concentration": "#c49c94", "forced_liquidation": "#f7b6d2", "funding_rate_farming": "#dbdb8d",
}
_SPARE_COLORS = ("#393b79", "#637939", "#8c6d31", "#7b4173", "#3182bd", "#31a354", "#756bb1", "#636363")
_SERIES_COLORS = ("#2f6690", "#3a9d7a", "#8e6cbf", "#6b6b6b", "#b5a33a", "#8c564b", "#17becf", "#e377c2")
ACTIVITY_COLOR = "#2f6690"
_PATTERN_WORDS = {"ml": "ML", "and": "and"}
WIDE_IN = (7.0, 3.2)  # the PDF frame is ~6.85 in wide: fonts print at about their nominal size
_STYLE = {
    "font.size": 8.5, "axes.titlesize": 10, "axes.titleweight": "bold", "axes.labelsize": 8.5,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8, "legend.title_fontsize": 8,
    "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#616e7c",
    "xtick.color": "#3e4c59", "ytick.color": "#3e4c59", "axes.labelcolor": "#1f2933", "text.color": "#1f2933",
}
_NOTE_STYLE = {"ha": "center", "va": "center", "fontsize": 10, "color": "#616e7c"}
_MUTED_TICK = "#b0b7bf"


def pattern_label(pattern: str) -> str:
    """Display name of a pattern: wash_trading -> "Wash trading", ml_anomaly -> "ML anomaly"."""
    words = str(pattern).split("_")
    text = " ".join(_PATTERN_WORDS.get(w, w) for w in words)
    return text[:1].upper() + text[1:]


def pattern_colors(patterns: Sequence[str]) -> dict[str, str]:
    """One colour per pattern: fixed for the vocabulary, spare colours in order for any other name."""
    spare = iter(_SPARE_COLORS * (1 + len(patterns) // len(_SPARE_COLORS)))
    return {p: _PATTERN_PALETTE.get(p) or next(spare) for p in patterns}


@contextmanager
def _new_figure(size: tuple[float, float], **options) -> Iterator[tuple[Figure, object]]:
    """A constrained-layout figure in the report style; closed on exit whatever happens."""
    with plt.rc_context(_STYLE):
        figure, axes = plt.subplots(figsize=size, dpi=DPI, layout="constrained", **options)
        try:
            yield figure, axes
        finally:
            plt.close(figure)


def _note(axes: plt.Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, **_NOTE_STYLE)


def _time_axis(axes: plt.Axes, start: datetime, end: datetime, *, max_ticks: int = 9) -> None:
    """UTC date axis from `start` to `end` with concise labels (no repeated dates, no overlaps)."""
    _date_ticks(axes, max_ticks=max_ticks)
    axes.set_xlim(mdates.date2num(start), mdates.date2num(end))


def _date_ticks(axes: plt.Axes, *, max_ticks: int = 9) -> None:
    """Concise UTC date ticks: days as "Feb 05", times as "12:00", the day named at midnight."""
    # minticks 4: a three-day axis gets 12-hour ticks rather than three bare days
    locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=max_ticks)
    axes.xaxis.set_major_locator(locator)
    # no offset text in the corner: it names the last tick's day, which reads as one more label
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
        locator, tz=UTC, show_offset=False, formats=["%Y", "%b", "%b %d", "%H:%M", "%H:%M", "%S.%f"],
        zero_formats=["%Y", "%b %Y", "%b %d", "%b %d", "%H:%M", "%H:%M"]))


def activity_bucket(start: datetime, end: datetime) -> tuple[int, str]:
    """Hours per bar of an activity timeline and its name: hourly up to 4 days, 6-hourly up to 14, then daily
    (a month of hourly steps is a solid block)."""
    days = (end - start).total_seconds() / 86400
    return (1, "hour") if days <= 4 else (6, "6 hours") if days <= 14 else (24, "day")


def _bucketed(hours: Sequence[datetime], values: Sequence[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums per `size`-hour bucket (aligned to UTC midnight) on a gap-free grid (missing buckets are zero),
    as (edges, values) in date numbers."""
    if not len(hours):
        return np.array([]), np.array([])
    totals: dict[datetime, float] = {}
    for hour, value in zip(hours, values, strict=True):
        hour = hour.astimezone(UTC) if hour.tzinfo else hour.replace(tzinfo=UTC)
        key = hour.replace(hour=hour.hour - hour.hour % size, minute=0, second=0, microsecond=0)
        totals[key] = totals.get(key, 0.0) + (0.0 if value is None else float(value))
    first, last = min(totals), max(totals)
    step = timedelta(hours=size)
    grid = [first + i * step for i in range(int((last - first) / step) + 1)]
    edges = mdates.date2num(grid + [last + step])
    return np.asarray(edges), np.array([totals.get(h, 0.0) for h in grid])


def activity_timeline(path: str | Path, series: Mapping[str, tuple[Sequence[datetime], Sequence[float]]],
                      alerts: Sequence[tuple[datetime, datetime, str]], *, start: datetime, end: datetime,
                      title: str = "Trading activity and alert windows", ylabel: str | None = None,
                      empty_text: str = "No activity data") -> Path:
    """Activity from hourly values (one stepped line per series; missing hours count as zero) over
    `start`..`end`, summed into bars of 1, 6 or 24 hours by the length of the span (`activity_bucket`; the
    default y label says which), with every alert window (start, end, risk level) drawn on a lane per risk
    level underneath and shaded faintly behind the activity."""
    size, bucket_name = activity_bucket(start, end)
    ylabel = ylabel or f"Trades per {bucket_name}"
    with _new_figure((7.0, 3.9), nrows=2, sharex=True, height_ratios=[3.0, 1.15]) as (figure, (top, lanes)):
        drawn = 0
        several = sum(1 for hours, _ in series.values() if len(hours)) > 1
        for index, (name, (hours, values)) in enumerate(series.items()):
            edges, totals = _bucketed(hours, values, size)
            if not totals.size:
                continue
            color = _SERIES_COLORS[index % len(_SERIES_COLORS)] if several else ACTIVITY_COLOR
            top.stairs(totals, edges, color=color, linewidth=1.3, label=name, zorder=3)
            if not several:
                top.stairs(totals, edges, fill=True, color=color, alpha=0.18, zorder=2)
            drawn += 1
        if drawn:
            top.set_ylim(bottom=0)
            top.margins(y=0.08)
            top.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            top.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            if several:
                top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="Symbol")
        else:
            top.set_yticks([])
            _note(top, empty_text)
        top.set_ylabel(ylabel)
        top.set_title(title, loc="left")
        top.grid(True, axis="y", linewidth=0.5, alpha=0.5)

        span = max((end - start).total_seconds(), 3600.0)
        shortest = span * 0.003 / 86400  # a five-minute window still shows on a three-day axis
        counts = dict.fromkeys(RISK_ORDER, 0)
        lane = {risk: len(RISK_ORDER) - 1 - i for i, risk in enumerate(RISK_ORDER)}
        for window_start, window_end, risk in alerts:
            risk = risk if risk in RISK_COLORS else "LOW"
            counts[risk] += 1
            x0 = mdates.date2num(window_start)
            width = max(mdates.date2num(window_end) - x0, shortest)
            lanes.broken_barh([(x0, width)], (lane[risk] - 0.32, 0.64), facecolors=RISK_COLORS[risk], alpha=0.75,
                              linewidth=0)
            top.axvspan(x0, x0 + width, color=RISK_COLORS[risk], alpha=0.10, linewidth=0, zorder=1)
        lanes.set_ylim(-0.6, len(RISK_ORDER) - 0.4)
        lanes.set_yticks([lane[r] for r in RISK_ORDER], [f"{r} ({counts[r]})" for r in RISK_ORDER])
        for tick, risk in zip(lanes.get_yticklabels(), RISK_ORDER, strict=True):
            tick.set_color(RISK_COLORS[risk])
            tick.set_fontweight("bold")
        lanes.tick_params(axis="y", length=0)
        lanes.grid(True, axis="x", linewidth=0.5, alpha=0.5)
        if not alerts:
            _note(lanes, "No alerts in this period")
        lanes.set_xlabel("Time (UTC)")
        _time_axis(lanes, start, end)
        return _save(figure, Path(path))


def score_histogram(path: str | Path, scores: Sequence[float], *, threshold: float = 0.5,
                    title: str = "Model anomaly scores", xlabel: str = "Anomaly score",
                    ylabel: str = "Account-days", empty_text: str = "No model scores in this period") -> Path:
    """Histogram of scores in [0, 1] (40 bins), bins at or above `threshold` in the HIGH colour, the threshold
    marked; a log count axis when the bins differ by more than 30x, as anomaly scores usually do."""
    values = np.asarray([v for v in scores if v is not None], dtype=float)
    values = np.clip(values[np.isfinite(values)], 0.0, 1.0)
    with _new_figure(WIDE_IN) as (figure, axes):
        axes.set_title(title, loc="left")
        axes.set_xlim(0, 1)
        axes.set_xlabel(xlabel)
        if not values.size:
            axes.set_yticks([])
            _note(axes, empty_text)
            return _save(figure, Path(path))
        edges = np.linspace(0.0, 1.0, 41)
        counts, _ = np.histogram(values, edges)
        above = edges[:-1] >= threshold - 1e-12
        colors = [RISK_COLORS["HIGH"] if a else RISK_COLORS["LOW"] for a in above]
        axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colors, edgecolor="white",
                 linewidth=0.4)
        nonzero = counts[counts > 0]
        if nonzero.max() > 30 * nonzero.min():
            axes.set_yscale("log")
            axes.set_ylim(0.7, nonzero.max() * 4)
            axes.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))  # 1, 10, 100, not 10^k
            ylabel += " (log scale)"
        else:
            axes.set_ylim(0, nonzero.max() * 1.3)
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(ylabel)
        flagged = int((values >= threshold).sum())
        axes.axvline(threshold, color="#1f2933", linestyle="--", linewidth=1.0)
        side = "left" if threshold <= 0.6 else "right"
        axes.text(threshold + (0.012 if side == "left" else -0.012), 0.96,
                  f"threshold {threshold:.2f}\n{flagged:,} of {values.size:,} at or above ({flagged / values.size:.1%})",
                  transform=axes.get_xaxis_transform(), ha=side, va="top", fontsize=8,
                  bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#cbd2d9", "alpha": 0.95})
        axes.grid(True, axis="y", linewidth=0.5, alpha=0.5)
        return _save(figure, Path(path))


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def alert_heatmap(path: str | Path, starts: Sequence[datetime], *, weekdays_in_period: Sequence[int] | None = None,
                  title: str = "Alerts by hour of day and weekday",
                  xlabel: str = "Hour of day (UTC, window start)") -> Path:
    """Alert counts on a weekday x hour-of-day grid with the count written in each non-empty cell; weekdays
    outside the period (`weekdays_in_period`, Monday = 0) get grey labels."""
    counts = np.zeros((7, 24), dtype=int)
    for moment in starts:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
        counts[moment.weekday(), moment.hour] += 1
    with _new_figure((7.0, 3.0)) as (figure, axes):
        top = max(int(counts.max()), 1)
        base = plt.get_cmap("YlOrRd")
        cmap = matplotlib.colors.ListedColormap(base(np.linspace(0.18, 1.0, 256))).with_extremes(bad="#f3f4f6")
        image = axes.imshow(np.ma.masked_equal(counts, 0), aspect="auto", cmap=cmap,
                            norm=matplotlib.colors.Normalize(vmin=1, vmax=max(top, 2)), interpolation="nearest")
        for (row, column), value in np.ndenumerate(counts):
            if value:
                red, green, blue, _ = cmap(image.norm(value))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.55
                axes.text(column, row, str(value), ha="center", va="center", fontsize=6.5,
                          color="white" if dark else "#1f2933")
        axes.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
        axes.set_yticks(range(7), _WEEKDAYS)
        axes.set_xticks(np.arange(-0.5, 24, 1), minor=True)
        axes.set_yticks(np.arange(-0.5, 7, 1), minor=True)
        axes.grid(which="minor", color="white", linewidth=1.0)
        axes.tick_params(which="minor", length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)
        if weekdays_in_period is not None:
            inside = set(weekdays_in_period)
            for day, tick in enumerate(axes.get_yticklabels()):
                if day not in inside:
                    tick.set_color(_MUTED_TICK)
        axes.set_xlabel(xlabel)
        axes.set_ylabel("Weekday")
        axes.set_title(title, loc="left")
        bar = figure.colorbar(image, ax=axes, fraction=0.035, pad=0.015)
        bar.set_label("Alerts")
        bar.locator = MaxNLocator(integer=True, nbins=5)
        bar.update_ticks()
        bar.outline.set_visible(False)
        if not counts.any():
            _note(axes, "No alerts in this period")
        return _save(figure, Path(path))


def risk_level_bars(path: str | Path, counts: Mapping[str, int], *, title: str = "Alerts by risk level") -> Path:
    """One bar per risk level (HIGH, MEDIUM, LOW) in the risk colours, labelled with count and share."""
    levels = list(RISK_ORDER) + [r for r in counts if r not in RISK_ORDER]
    values = [int(counts.get(r, 0)) for r in levels]
    total = sum(values)
    with _new_figure((5.0, 2.5)) as (figure, axes):
        bars = axes.bar(levels, values, color=[RISK_COLORS.get(r, "#9aa5b1") for r in levels], width=0.6)
        for bar, value in zip(bars, values, strict=True):
            share = f" ({value / total:.0%})" if total else ""
            axes.annotate(f"{value:,}{share}", (bar.get_x() + bar.get_width() / 2, value), xytext=(0, 2),
                          textcoords="offset points", ha="center", va="bottom", fontsize=8)
        axes.set_ylim(0, max(values + [1]) * 1.22)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        axes.set_ylabel("Alerts")
        axes.set_title(title, loc="left")
        axes.grid(True, axis="y", linewidth=0.5, alpha=0.5)
        axes.set_axisbelow(True)
        if not total:
            _note(axes, "No alerts in this period")
        return _save(figure, Path(path))


def _day_ticks(axes: plt.Axes, days: Sequence[date], *, most: int = 10) -> None:
    """Categorical day positions labelled "Mar 02", thinned to at most `most` labels."""
    step = max(1, math.ceil(len(days) / most))
    positions = list(range(0, len(days), step))
    axes.set_xticks(positions, [days[i].strftime("%b %d") for i in positions])
    spare = max(0.0, (4 - len(days)) / 2)  # one or two days: keep the bars from filling the width
    axes.set_xlim(-0.6 - spare, len(days) - 0.4 + spare)


def pattern_trend(path: str | Path, days: Sequence[date], counts: Mapping[str, Sequence[int]], *,
                  title: str = "Alerts per day by pattern") -> Path:
    """Stacked bars: one bar per day, one segment per pattern (`counts`: pattern -> count per day), the day's
    total above each bar; the legend sits outside the plot on the right."""
    colors = pattern_colors(list(counts))
    with _new_figure(WIDE_IN) as (figure, axes):
        positions = np.arange(len(days))
        bottom = np.zeros(len(days))
        for pattern, values in counts.items():
            values = np.asarray(values, dtype=float)
            if len(values) != len(days):
                raise ValueError(f"pattern {pattern!r}: {len(values)} counts for {len(days)} days")
            if values.any():
                axes.bar(positions, values, bottom=bottom, width=0.7, color=colors[pattern],
                         label=pattern_label(pattern), edgecolor="white", linewidth=0.4)
            bottom += values
        if len(days) <= 31:
            for x, total in zip(positions, bottom, strict=True):
                if total:
                    axes.annotate(f"{int(total)}", (x, total), xytext=(0, 2), textcoords="offset points",
                                  ha="center", va="bottom", fontsize=7.5)
        if days:
            _day_ticks(axes, days)
        axes.set_ylim(0, max(float(bottom.max()) if len(days) else 0.0, 1.0) * 1.15)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        axes.set_ylabel("Alerts")
        axes.set_xlabel("Day (UTC)")
        axes.set_title(title, loc="left")
        axes.grid(True, axis="y", linewidth=0.5, alpha=0.5)
        axes.set_axisbelow(True)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="Pattern")
        else:
            _note(axes, "No alerts in this period")
        return _save(figure, Path(path))


def risk_by_pattern(path: str | Path, counts: Mapping[str, Mapping[str, int]], *,
                    title: str = "Risk levels by pattern") -> Path:
    """Horizontal stacked bars, one per pattern (top to bottom in `counts` order), split by risk level."""
    patterns = list(counts)
    with _new_figure((7.0, 1.3 + 0.32 * max(len(patterns), 2))) as (figure, axes):
        positions = np.arange(len(patterns))[::-1]
        left = np.zeros(len(patterns))
        for risk in RISK_ORDER:
            values = np.array([counts[p].get(risk, 0) for p in patterns], dtype=float)
            axes.barh(positions, values, left=left, height=0.62, color=RISK_COLORS[risk], label=risk,
                      edgecolor="white", linewidth=0.4)
            left += values
        for y, total in zip(positions, left, strict=True):
            axes.annotate(f"{int(total)}", (total, y), xytext=(3, 0), textcoords="offset points", va="center",
                          fontsize=7.5)
        axes.set_yticks(positions, [pattern_label(p) for p in patterns])
        axes.set_xlim(0, max(float(left.max()) if patterns else 0.0, 1.0) * 1.1)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        axes.set_xlabel("Alerts")
        axes.set_title(title, loc="left")
        axes.grid(True, axis="x", linewidth=0.5, alpha=0.5)
        axes.set_axisbelow(True)
        axes.tick_params(axis="y", length=0)
        if patterns:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="Risk level")
        else:
            axes.set_yticks([])
            _note(axes, "No alerts in this period")
        return _save(figure, Path(path))


def score_history(path: str | Path, days: Sequence[date], scores: Sequence[float], *, threshold: float = 0.5,
                  period: tuple[date, date] | None = None, title: str = "Model score history",
                  empty_text: str = "No model scores for this account") -> Path:
    """The account's daily score as a line with markers (HIGH colour at or above `threshold`), the threshold
    dashed, and the report's period shaded when the history reaches further back."""
    points = sorted((d, float(s)) for d, s in zip(days, scores, strict=True) if s is not None and math.isfinite(s))
    with _new_figure((7.0, 2.7)) as (figure, axes):
        axes.set_title(title, loc="left")
        axes.set_ylim(-0.02, 1.04)
        axes.set_ylabel("Score")
        axes.axhline(threshold, color="#1f2933", linestyle="--", linewidth=0.9, label=f"threshold {threshold:.2f}")
        if points:
            # one point per day, drawn on the day's tick (midnight), half a day of room either side
            def at(day: date) -> float:
                return float(mdates.date2num(datetime(day.year, day.month, day.day, tzinfo=UTC)))

            values = np.array([v for _, v in points])
            positions = [at(d) for d, _ in points]
            axes.plot(positions, values, color=ACTIVITY_COLOR, linewidth=1.2, zorder=2)
            axes.scatter(positions, values, s=20, zorder=3, edgecolors="white", linewidths=0.5,
                         c=[RISK_COLORS["HIGH"] if v >= threshold else ACTIVITY_COLOR for v in values])
            first = min(points[0][0], period[0]) if period else points[0][0]
            last = max(points[-1][0], period[1]) if period else points[-1][0]
            if period and points[0][0] < period[0]:
                axes.axvspan(at(period[0]) - 0.5, at(last) + 0.5, color="#e4e7eb", alpha=0.6, linewidth=0,
                             zorder=0, label="report period")
            if (last - first).days <= 14:
                axes.xaxis.set_major_locator(mdates.DayLocator(tz=UTC))
                axes.xaxis.set_major_formatter(mdates.DateFormatter("%b %d", tz=UTC))
            else:
                _date_ticks(axes, max_ticks=8)
            axes.set_xlim(at(first) - 0.5, at(last) + 0.5)
            axes.set_xlabel("Day (UTC)")
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        else:
            axes.set_xticks([])
            _note(axes, empty_text)
        axes.grid(True, axis="y", linewidth=0.5, alpha=0.5)
        return _save(figure, Path(path))


def feature_percentiles(path: str | Path, features: Sequence[str], percentiles: Sequence[float], *,
                        labels: Sequence[str] | None = None, title: str = "Percentile among all accounts") -> Path:
    """One horizontal bar per feature (top = first) from the peer median (50) to the account's percentile,
    labelled with `labels` (default: the percentile to one decimal)."""
    labels = labels if labels is not None else [f"{p:.1f}" if p is not None else "" for p in percentiles]
    triples = [(f, float(p), text) for f, p, text in zip(features, percentiles, labels, strict=True)
               if p is not None and math.isfinite(p)]
    pairs = [(f, p) for f, p, _ in triples]
    with _new_figure((7.0, 1.1 + 0.27 * max(len(pairs), 3))) as (figure, axes):
        positions = np.arange(len(pairs))[::-1]
        for y, (_, value, text) in zip(positions, triples, strict=True):
            color = "#8e6cbf" if value >= 50 else ACTIVITY_COLOR
            axes.barh(y, value - 50, left=50, height=0.6, color=color)
            axes.annotate(text, (value, y), xytext=(3 if value >= 50 else -3, 0),
                          textcoords="offset points", va="center", ha="left" if value >= 50 else "right",
                          fontsize=7.5)
        axes.axvline(50, color="#1f2933", linewidth=0.9)
        axes.set_xlim(-8, 108)
        axes.set_xticks([0, 25, 50, 75, 100], ["0", "25", "50\n(peer median)", "75", "100"])
        axes.set_yticks(positions, [f for f, _ in pairs])
        axes.tick_params(axis="y", length=0)
        axes.set_xlabel("Percentile among the accounts of the day")
        axes.set_title(title, loc="left")
        axes.grid(True, axis="x", linewidth=0.5, alpha=0.5)
        axes.set_axisbelow(True)
        if not pairs:
            axes.set_yticks([])
            _note(axes, "No features for this account")
        return _save(figure, Path(path))
