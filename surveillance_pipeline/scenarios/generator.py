"""generate_scenario: the day loop that lays out the market, plans episodes and fills in the background."""
from __future__ import annotations

import datetime
from collections.abc import Callable

import numpy as np
import polars as pl

from surveillance_pipeline.contract import LABEL_SCHEMA, USER_IDS_SEPARATOR, Label
from surveillance_pipeline.scenarios.background import simulate_background
from surveillance_pipeline.scenarios.book import SymbolTouch
from surveillance_pipeline.scenarios.book_abuse import inject_layering, inject_quote_stuffing, inject_spoofing
from surveillance_pipeline.scenarios.context import DayContext, EpisodeLabel, build_accounts
from surveillance_pipeline.scenarios.excessive import inject_excessive_trading
from surveillance_pipeline.scenarios.market import DAY_US, PricePath
from surveillance_pipeline.scenarios.organic import plan_frequent_counterparties, plan_rallies, plan_round_trips
from surveillance_pipeline.scenarios.pump import inject_pump, plan_pump
from surveillance_pipeline.scenarios.spec import Scenario, ScenarioSpec, profile_for
from surveillance_pipeline.scenarios.tape import Tape
from surveillance_pipeline.scenarios.wash import inject_circular, inject_pair_wash, inject_self_wash

# Episodes injected per day besides the pump; long ones first so short ones fit around them.
EPISODES_PER_DAY: tuple[tuple[Callable[[DayContext], None], int], ...] = (
    (inject_excessive_trading, 1),
    (inject_self_wash, 1),
    (inject_pair_wash, 1),
    (inject_circular, 2),
    (inject_spoofing, 2),
    (inject_layering, 2),
    (inject_quote_stuffing, 2),
)


def generate_scenario(spec: ScenarioSpec) -> Scenario:
    """A labelled synthetic market: background flow every day, plus abuse episodes unless spec.clean."""
    accounts_seed, price_seed, days_seed = np.random.SeedSequence(spec.seed).spawn(3)
    accounts = build_accounts(spec.accounts, np.random.default_rng(accounts_seed))
    profiles = {symbol: profile_for(symbol) for symbol in spec.symbols}
    start_us = _midnight_us(spec.start_date)
    market = PricePath(start_us, spec.days, profiles, np.random.default_rng(price_seed))
    tape = Tape()
    days = [DayContext(spec, np.random.default_rng(day_seed), tape, market, accounts, profiles,
                       start_us + day_index * DAY_US)
            for day_index, day_seed in enumerate(days_seed.spawn(spec.days))]
    # Price overlays of every day first: every order is priced against the final path, so that no resting
    # order is ever through the touch (scenarios.book), even one still live when a later day's rally starts.
    pumps = []
    for day in days:
        plan_rallies(day)
        pumps.append(None if spec.clean else plan_pump(day))
    touches = {symbol: SymbolTouch(market, symbol) for symbol in spec.symbols}
    labels: list[EpisodeLabel] = []
    for day, pump in zip(days, pumps):
        day.touches = touches
        plan_round_trips(day)
        plan_frequent_counterparties(day)
        if pump is not None:
            inject_pump(day, pump)
            for inject, count in EPISODES_PER_DAY:
                for _ in range(count):
                    inject(day)
        simulate_background(day)
        day.release_touch()
        labels.extend(day.labels)
    trades, orders = tape.build(list(spec.symbols), accounts.names)
    return Scenario(trades=trades, orders=orders, labels=_labels_frame(labels, accounts.names))


def _midnight_us(date: datetime.date) -> int:
    midnight = datetime.datetime(date.year, date.month, date.day, tzinfo=datetime.UTC)
    return int(midnight.timestamp()) * 1_000_000


def _labels_frame(labels: list[EpisodeLabel], names: list[str]) -> pl.DataFrame:
    ordered = sorted(labels, key=lambda lab: (lab.start, lab.end, lab.pattern.value, lab.symbol))
    rows = {
        Label.EPISODE_ID: [f"ep-{i:04d}" for i in range(1, len(ordered) + 1)],
        Label.PATTERN: [lab.pattern.value for lab in ordered],
        Label.SYMBOL: [lab.symbol for lab in ordered],
        Label.USER_IDS: [USER_IDS_SEPARATOR.join(sorted(names[u] for u in lab.users)) for lab in ordered],
        Label.START: [lab.start for lab in ordered],
        Label.END: [lab.end for lab in ordered],
    }
    frame = pl.DataFrame(rows, schema={**LABEL_SCHEMA, Label.START: pl.Int64, Label.END: pl.Int64})
    return frame.with_columns(pl.col(Label.START).cast(LABEL_SCHEMA[Label.START]),
                              pl.col(Label.END).cast(LABEL_SCHEMA[Label.END]))
