"""What the detector tests share: hand-made trade and order builders, and the generated-scenario checks.

A detector's scenario tests score its findings with the project's own evaluation
(`surveillance_pipeline.evaluation.evaluate`): findings become alerts, and an alert matches a labelled episode
when they share the pattern family, the symbol, the window (give or take the slack) and, for an account-level
episode, an account.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from surveillance_pipeline.contract import LABEL_SCHEMA, ORDER_SCHEMA, TRADE_SCHEMA, Label, Pattern
from surveillance_pipeline.detectors.alerts import findings_to_alerts
from surveillance_pipeline.detectors.base import DetectionInputs, DetectorSettings, Finding
from surveillance_pipeline.evaluation import EvaluationReport, EvaluationSettings, evaluate
from surveillance_pipeline.scenarios import Scenario, ScenarioSpec, generate_scenario

DAY = date(2026, 3, 2)
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
BTC = "BTCUSDT"
SLACK_MINUTES = 5.0


def at(seconds: float) -> datetime:
    """T0 (10:00 UTC on DAY) plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def metrics(finding: dict) -> dict:
    return json.loads(finding[Finding.METRICS])


# -- hand-made trades --------------------------------------------------------------------------------------------

def tape(rows: list[tuple], symbol: str, side: str) -> pl.DataFrame:
    """Trades from (seconds after T0, price, quantity, buyer, seller), all with taker `side`; ids t0, t1, ...
    in row order."""
    return pl.DataFrame(
        [{"trade_id": f"t{i}", "timestamp": at(s), "symbol": symbol, "side": side, "price": p, "quantity": q,
          "buyer_id": b, "seller_id": se, "market_type": "spot", "quote_quantity": p * q}
         for i, (s, p, q, b, se) in enumerate(rows)],
        schema=TRADE_SCHEMA,
    )


def complete_trades(frame: pl.DataFrame) -> pl.DataFrame:
    """Trades in TRADE_SCHEMA from timestamp, symbol, side, price, quantity, buyer_id and seller_id: no order
    ids, spot, quote quantity = price x quantity, no fee, trade ids blank (to be numbered once sorted)."""
    return frame.with_columns(
        pl.lit(None, pl.String).alias("buyer_order_id"), pl.lit(None, pl.String).alias("seller_order_id"),
        pl.lit("spot").alias("market_type"), (pl.col("price") * pl.col("quantity")).alias("quote_quantity"),
        pl.lit(None, pl.Float64).alias("fee"), pl.lit("").alias("trade_id"),
    ).select(list(TRADE_SCHEMA)).cast(TRADE_SCHEMA)


# -- hand-made order books -----------------------------------------------------------------------------------

class Book:
    """Order events and trades in BTC written row by row: place / cancel / fill (a trade against a resting
    order)."""

    def __init__(self):
        self.orders, self.trades = [], []

    def place(self, s, oid, user, side, price, qty, order_type="limit"):
        self.orders.append({"order_id": oid, "timestamp": at(s), "user_id": user, "symbol": BTC, "side": side,
                            "price": price, "quantity": qty, "event": "new", "order_type": order_type,
                            "market_type": "spot"})

    def cancel(self, s, oid):
        new = next(o for o in self.orders if o["order_id"] == oid and o["event"] == "new")
        self.orders.append({**new, "timestamp": at(s), "event": "cancel"})

    def fill(self, s, oid, taker, qty) -> str:
        """A taker of `taker` meets resting order `oid` (its owner is the maker); returns the trade id."""
        maker = next(o for o in self.orders if o["order_id"] == oid and o["event"] == "new")
        buy = maker["side"] == "sell"
        tid = f"t{len(self.trades)}"
        self.trades.append({
            "trade_id": tid, "timestamp": at(s), "symbol": BTC, "side": "buy" if buy else "sell",
            "price": maker["price"], "quantity": qty,
            "buyer_id": taker if buy else maker["user_id"], "seller_id": maker["user_id"] if buy else taker,
            "buyer_order_id": f"x{tid}" if buy else oid, "seller_order_id": oid if buy else f"x{tid}",
            "market_type": "spot", "quote_quantity": maker["price"] * qty, "fee": 0.0})
        return tid

    def inputs(self) -> DetectionInputs:
        return DetectionInputs(trades=pl.DataFrame(self.trades, schema=TRADE_SCHEMA),
                               orders=pl.DataFrame(self.orders, schema=ORDER_SCHEMA))


def background(book: Book, seconds: float = 600.0, sell_price: float = 99.0, buy_price: float = 101.0) -> Book:
    """60 resting orders of size 1 over `seconds` from other accounts, alternately a sell at `sell_price` and
    a buy at `buy_price`: the book's median resting order is 1. Returns the book."""
    for i in range(60):
        book.place(i * seconds / 60, f"bg{i}", f"r{i % 3}", "buy" if i % 2 else "sell",
                   buy_price if i % 2 else sell_price, 1.0)
    return book


# -- generated scenarios -----------------------------------------------------------------------------------------

def trades_day(seed: int, clean: bool = False) -> ScenarioSpec:
    """The generated day the account-level trade detectors (wash, circular trading) are tested on."""
    return ScenarioSpec(days=1, seed=seed, trades_per_day=5_000, clean=clean)


def order_book_day(seed: int, clean: bool = False) -> ScenarioSpec:
    """The generated day the order-event detectors (spoofing, layering, quote stuffing) are tested on."""
    return ScenarioSpec(days=1, seed=seed, accounts=60, trades_per_day=2_000, clean=clean)


@functools.cache
def generated(spec: ScenarioSpec) -> Scenario:
    """The scenario of `spec`, generated once per test process (frames are immutable, detectors only read)."""
    return generate_scenario(spec)


def daily_inputs(trades: pl.DataFrame, *, history: bool) -> Iterator[DetectionInputs]:
    """One UTC day of `trades` at a time, in order, with the days before as `history` when asked."""
    for day in trades["timestamp"].dt.date().unique().sort():
        start = datetime.combine(day, time(), tzinfo=UTC)
        today = trades.filter(pl.col("timestamp").is_between(start, start + timedelta(days=1), closed="left"))
        if history:
            yield DetectionInputs(trades=today, history=trades.filter(pl.col("timestamp") < start), day=day)
        else:
            yield DetectionInputs(trades=today, day=day)


def detect_daily(detect: Callable[[DetectionInputs, DetectorSettings], pl.DataFrame], settings: DetectorSettings,
                 trades: pl.DataFrame, *, history: bool) -> pl.DataFrame:
    """The detector run day by day over `trades` (see daily_inputs), its findings concatenated."""
    return pl.concat([detect(inputs, settings) for inputs in daily_inputs(trades, history=history)])


def detect_generated(detect: Callable[[DetectionInputs, DetectorSettings], pl.DataFrame], settings: DetectorSettings,
                     spec: ScenarioSpec, *, daily: bool = False,
                     history: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(findings, labels) of the detector on the generated scenario of `spec`: over the whole scenario at once
    (its trades and order events), or `daily` as detect_daily runs it (trades only)."""
    scenario = generated(spec)
    if daily:
        return detect_daily(detect, settings, scenario.trades, history=history), scenario.labels
    return detect(DetectionInputs(trades=scenario.trades, orders=scenario.orders), settings), scenario.labels


def as_alerts(findings: pl.DataFrame) -> pl.DataFrame:
    """One alert per finding (not merged): the alert contract's ids and ';'-joined accounts."""
    return findings_to_alerts(findings, {}, high=0.8, medium=0.5, max_evidence=10)


def _family(pattern: str, settings: EvaluationSettings) -> list[str]:
    family_of = settings.family_of()
    return [p for p, family in family_of.items() if family == family_of[pattern]] if pattern in family_of \
        else [pattern]


def _listed(frame: pl.DataFrame) -> str:
    return "\n".join(str(row) for row in frame.iter_rows(named=True))


def assert_episodes_found(findings: pl.DataFrame, labels: pl.DataFrame, pattern: Pattern, *, min_episodes: int = 1,
                          per_episode: float = 1.5, each_once: bool = False,
                          slack_minutes: float = SLACK_MINUTES) -> EvaluationReport:
    """A detector's findings on a generated scenario, scored by `evaluate` against the scenario's labels.

    - at least `min_episodes` episodes of `pattern` are labelled, and the findings are all of `pattern`;
    - recall 1: every episode of `pattern` is matched by a finding;
    - every finding matches a labelled episode of its family (no false alert);
    - at most `per_episode` findings per labelled episode of `pattern`;
    - `each_once`: every episode is matched by exactly one finding, and there are as many findings as episodes.
    """
    pattern = Pattern(pattern).value
    settings = EvaluationSettings(slack_minutes=slack_minutes)
    assert set(findings[Finding.PATTERN].unique()) <= {pattern}, findings[Finding.PATTERN].unique()
    episodes = labels.filter(pl.col(Label.PATTERN) == pattern)
    assert episodes.height >= min_episodes, _listed(labels)
    if pattern not in settings.market_level_patterns:
        # evaluate() matches an episode without accounts on symbol and window alone; an account-level
        # detector's findings must share an account with the episode, so every episode they are scored
        # against has to name one
        anonymous = labels.filter(pl.col(Label.PATTERN).is_in(_family(pattern, settings))
                                  & (pl.col(Label.USER_IDS).fill_null("").str.strip_chars() == ""))
        assert anonymous.is_empty(), _listed(anonymous)
    alerts = as_alerts(findings)
    report = evaluate(alerts, labels, settings)
    row = report.row(pattern)
    table = report.format_table()
    assert row.episodes == episodes.height and row.alerts == findings.height, table
    missed = episodes.filter(pl.col(Label.EPISODE_ID).is_in(row.missed_episode_ids))
    assert not row.missed_episode_ids, f"{table}\nmissed:\n{_listed(missed)}"
    unmatched = alerts.filter(pl.col("alert_id").is_in(row.false_alert_ids))
    assert not row.false_alert_ids, f"{table}\nno episode:\n{_listed(unmatched)}"
    assert row.alerts <= per_episode * row.episodes, f"{table}\n{_listed(alerts)}"
    if each_once:
        for i in range(episodes.height):
            one = evaluate(alerts, episodes.slice(i, 1), settings).row(pattern)
            assert one.matching_alerts == 1, f"{episodes.row(i, named=True)}\n{_listed(alerts)}"
        assert row.alerts == row.episodes, table
    return report


def assert_no_findings(findings: pl.DataFrame, labels: pl.DataFrame) -> None:
    """A clean scenario (no labelled episode): the detector raises nothing."""
    assert labels.is_empty(), _listed(labels)
    report = evaluate(as_alerts(findings), labels.cast(LABEL_SCHEMA))
    assert report.alerts == 0 and findings.is_empty(), _listed(findings)
