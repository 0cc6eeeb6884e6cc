"""Spoofing: large orders on one side, resting while a fill of the same account comes on the other side, then pulled.

The definition (CEA §4c(a)(5)(C), Dodd-Frank §747): "bidding or offering with the intent to cancel the bid or
offer before execution". The enforced cases (Sarao, Coscia) show its trace in order events: an account rests
an order far larger than it normally trades, and than the book normally shows, on one side; a small genuine
order of the same account executes on the other side while it rests; once that trade is done the large order
has no purpose left and is cancelled, itself (mostly) unexecuted - by an algorithm within milliseconds, by a
hand within seconds, or when its planned rest runs out; and the cycle repeats, the account's genuine trades in
the symbol being the ones its fake orders support.

A spoof cycle here is one fill of an account in a symbol with the account's large orders on the other side that
the fill ties to (orderbook.opposite_fill_near_cancel: two join_asofs per cancelled order): the last fill while
the order rested, at most `max_cancel_after_fill_ms` before its cancel, or failing that the first one at most
`max_cancel_before_fill_ms` after it (the order pulled as its own opposite order is being taken). It counts when
- each order is large: >= `account_size_multiple` x the account's normal order size (the median size of its
  executed orders in the symbol) and >= `book_size_multiple` x the symbol's typical resting order (the median
  over accounts of each account's median resting order: orderbook.median_resting_size);
- it rested at most `max_order_life_ms` and executed at most `max_filled_share` of its size;
- the cycle's large orders add up to >= `min_fake_vs_fill` x the genuine execution (the account's fills on the
  filled side at that instant): the fake shows more interest than the account trades;
- the account leaned on one side: the quantity resting on the large orders' side just before the fill (or the
  cancel, if that came first) >= `min_side_imbalance` x what it still had resting on the filled side just after
  the fill (the genuine order that just executed has done its job and is not counted against the fakes);
- the orders that fill ties to stand at no more than `max_price_levels` prices. Layering (detectors.layering)
  ties cancels to fills the same way and takes the cycles at >= its `min_layers` prices: with the defaults
  (`max_price_levels` = `min_layers` - 1, the same timing bounds) every cycle belongs to exactly one of the two
  detectors of the family, so a multi-level spoof is reported once, as layering, whether it was pulled just
  after or just before the fill.
Cycles of one account in one symbol less than `episode_gap_s` apart form an episode; an episode is a finding when
it has at least `min_cycles` cycles and it is the account's practice rather than market making, judged from
`execution_context_s` before the episode to as long after it (orderbook.account_practice): the genuine orders of
its cycles are at least `min_share_of_executions` of the account's orders executed in the symbol then (its large
orders, when partly hit, left out), and it had orders resting on both sides of the symbol at most
`max_two_sided_share` of that time. What a market maker is - quotes standing on both sides nearly all the time,
and hundreds of ordinary fills on both - is measured over the episode, not read from one instant: its varying
quote sizes and requotes after fills meet the per-cycle conditions by coincidence now and then, whereas a
spoofer's other side is empty between its genuine orders and its trades come with its fakes. A large order
cancelled once after a move, with no fill on the other side, never is a cycle. Known limit: an account that also
quotes both sides continuously in the same symbol is not reported by this rule.

Score: 1 - 2^-(cycles - min_cycles + 1): one half at the minimum repetition, each further cycle halves the doubt.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl
from pydantic import Field

from surveillance_pipeline.contract import Order, Pattern
from surveillance_pipeline.detectors.base import (
    DetectionInputs,
    Finding,
    empty_findings,
    findings_frame,
)
from surveillance_pipeline.detectors.orderbook import (
    BookPracticeSettings,
    BOOK_MEDIAN_SIZE,
    FILL_AT,
    FILL_ORDER,
    FILL_TRADE,
    SHARE_OF_EXECUTIONS,
    TWO_SIDED_SHARE,
    BookTables,
    Life,
    OwnFill,
    account_practice,
    book_key,
    book_tables,
    chain_ids,
    clock,
    evidence_list,
    imbalance_words,
    ms,
    number,
    opposite,
    opposite_fill_near_cancel,
    resting_quantity_before,
    side_ratio,
)

ACCOUNT, SYMBOL, SIDE = Order.USER_ID, Order.SYMBOL, Order.SIDE
CYCLE = [Life.BOOK, FILL_AT]  # one side of one account's book in one symbol, and the fill
CANCEL_AFTER_FILL_MS, PROBE_AT, AFTER_FILL = "cancel_after_fill_ms", "probe_at", "after_fill"
NORMAL, BOOK_TYPICAL = "account_normal_size", BOOK_MEDIAN_SIZE
SPOOF_SIDE_QTY, FILL_SIDE_QTY = "spoof_side_resting", "filled_side_resting"
FAKE_QTY, GENUINE_QTY = "cycle_large_quantity", "cycle_genuine_quantity"
EPISODE = [SYMBOL, ACCOUNT, "episode"]


class SpoofingSettings(BookPracticeSettings):
    account_size_multiple: float = Field(
        3.0, ge=1.0, le=1_000.0,
        description="a spoof order is at least this many times the account's normal order size (the median size "
                    "of its executed orders in the symbol): the cases show fakes an order of magnitude above the "
                    "genuine orders; 3x leaves room for smaller-scale spoofers, while an honest account's "
                    "occasional bigger order still has to meet every other condition, repeatedly")
    book_size_multiple: float = Field(
        1.5, ge=0.0, le=1_000.0,
        description="... and at least this many times the symbol's typical resting order (the median over accounts "
                    "of each account's median resting order, so that one market maker's thousands of quotes do "
                    "not set it alone): the order must stand out at its level to mislead about supply or demand; "
                    "half again as large as what a typical participant rests is already conspicuous (the "
                    "account-relative multiple is the stricter test)")
    max_cancel_after_fill_ms: int = Field(
        60_000, ge=1, le=3_600_000,
        description="the large order is cancelled at most this many ms after the account's last opposite fill "
                    "while it rested: once the genuine trade is done the fake has no purpose left and goes, at "
                    "once for an algorithm (Coscia: milliseconds), within seconds by hand, or when the rest planned "
                    "for it runs out; a minute bounds that last case, beyond it the cancel is a new decision")
    max_cancel_before_fill_ms: int = Field(
        1_000, ge=0, le=60_000,
        description="failing a fill while it rested, the large order is cancelled at most this many ms before the "
                    "account's opposite fill: pulled as the genuine order is being taken - an algorithm watching "
                    "its own order reacts within milliseconds, and a second bounds it; a cancel seconds before an "
                    "unrelated fill is a coincidence, not anticipation")
    max_order_life_ms: int = Field(
        120_000, ge=1, le=3_600_000,
        description="the large order rested at most this many ms (new to cancel): a fake stands only while the "
                    "genuine order waits to execute - milliseconds to seconds in the cases, a couple of minutes in "
                    "a slow market - while an order placed to trade waits for its price")
    max_filled_share: float = Field(
        0.5, ge=0.0, le=1.0,
        description="the large order executed at most this share of its size: 'intent to cancel before "
                    "execution' means most of it was withdrawn unexecuted, while a fake resting near the touch is "
                    "sometimes partly hit (a risk the cases show spoofers accepted); also the line between an "
                    "executed and an unexecuted order for the normal size")
    min_fake_vs_fill: float = Field(
        1.0, ge=0.0, le=1_000.0,
        description="the cycle's large orders add up to at least this many times the genuine execution they "
                    "support (the account's fills on the other side at that instant): the fake shows more interest "
                    "than the account actually trades (Coscia's and Sarao's fakes were many times their genuine "
                    "orders); a 'large' resting order smaller than the market order sent the other way is no "
                    "pressure in its favour")
    min_side_imbalance: float = Field(
        3.0, ge=0.0, le=1_000.0,
        description="the account's resting quantity on the large orders' side (just before the fill, or the "
                    "cancel if earlier) is at least this many times what it still had resting on the filled side "
                    "just after the fill: spoofing leans on one side; two-sided quotes of the same size are near 1")
    max_price_levels: int = Field(
        2, ge=1, le=100,
        description="the orders pulled around one fill stand at no more than this many prices; more successive "
                    "levels are layering (detectors.layering, whose min_layers is one more: one alert per cycle)")
    min_share_of_executions: float = Field(
        0.5, ge=0.0, le=1.0,
        description="the genuine orders of the episode's cycles are at least this share of the account's orders "
                    "executed in the symbol around the episode: the practice is that the account's trades there "
                    "come with fakes on the other side; for a market maker or a high-frequency quoter such "
                    "coincidences are a few among hundreds of two-sided fills")
    execution_context_s: float = Field(
        60.0, ge=0.0, le=86_400.0,
        description="the account's executions are counted from this many seconds before the episode's first "
                    "order to as long after its end: enough for a quoter's ordinary fills to show around even a "
                    "short episode, short enough that an occasional trader's unrelated trades hardly count")
    min_cycles: int = Field(
        2, ge=1, le=1_000,
        description="fill-then-cancel cycles an episode needs: the definition and the cases are about a "
                    "repeated practice; one large order pulled once is not reported")
    episode_gap_s: float = Field(
        1_800.0, gt=0.0, le=86_400.0,
        description="cycles of one account in one symbol less than this many seconds apart are one episode "
                    "(one alert per campaign, not per cycle): a practice repeated within the same half hour of a "
                    "session is one campaign, however patiently its cycles are spaced")


def detect_spoofing(inputs: DetectionInputs, settings: SpoofingSettings) -> pl.DataFrame:
    if not settings.enabled or not inputs.has_orders:
        return empty_findings()
    tables = book_tables(inputs)
    cycles = _spoof_cycles(tables, settings)
    if cycles.is_empty():
        return empty_findings()
    episodes = chain_ids(cycles, [SYMBOL, ACCOUNT], FILL_AT, timedelta(seconds=settings.episode_gap_s), "episode")
    return _findings(episodes, tables, settings)


def _account_normal_sizes(lifecycles: pl.DataFrame, pairs: pl.DataFrame, settings: SpoofingSettings) -> pl.DataFrame:
    """NORMAL for the given symbol x account pairs: the median size of the account's executed orders in the symbol
    (all its orders there when none it placed executed: fills without order links)."""
    executed = pl.col(Life.FILLED) > settings.max_filled_share * pl.col(Order.QUANTITY)
    return (lifecycles.join(pairs, on=[SYMBOL, ACCOUNT], how="semi").filter(pl.col(Order.QUANTITY) > 0)
            .group_by(SYMBOL, ACCOUNT).agg(pl.coalesce(pl.col(Order.QUANTITY).filter(executed).median(),
                                                       pl.col(Order.QUANTITY).median()).alias(NORMAL)))


def _spoof_cycles(tables: BookTables, settings: SpoofingSettings) -> pl.DataFrame:
    """One row per large order of a qualifying cycle, with its cycle's fill and measures."""
    lifecycles, fills = tables.lifecycles, tables.fills
    life_us = (pl.col(Life.CANCELLED) - pl.col(Life.PLACED)).dt.total_microseconds()
    candidates = lifecycles.filter(
        pl.col(Life.RESTING) & pl.col(Life.CANCELLED).is_not_null() & (pl.col(Order.QUANTITY) > 0)
        & (pl.col(Life.FILLED) <= settings.max_filled_share * pl.col(Order.QUANTITY))
        & (life_us <= settings.max_order_life_ms * 1_000))
    # large against the book first (a cheap join on the symbol), then against the account's own normal size
    big = candidates.join(tables.book_medians, on=SYMBOL, how="inner").filter(
        pl.col(Order.QUANTITY) >= settings.book_size_multiple * pl.col(BOOK_TYPICAL))
    normal = _account_normal_sizes(lifecycles, big.select(SYMBOL, ACCOUNT).unique(), settings)
    large = big.join(normal, on=[SYMBOL, ACCOUNT], how="inner").filter(
        pl.col(Order.QUANTITY) >= settings.account_size_multiple * pl.col(NORMAL))
    after_ms, before_ms = settings.max_cancel_after_fill_ms, settings.max_cancel_before_fill_ms
    tied = opposite_fill_near_cancel(large, fills, after_ms, before_ms)
    if tied.is_empty():
        return tied
    # the prices of every order (large or not) of those books that the same fills tie to
    same_books = candidates.join(tied.select(Life.BOOK).unique(), on=Life.BOOK, how="semi")
    levels = opposite_fill_near_cancel(same_books, fills, after_ms, before_ms).group_by(CYCLE).agg(
        pl.col(Order.PRICE).n_unique().alias("levels"))
    cycles = (
        tied.join(levels, on=CYCLE, how="inner").filter(pl.col("levels") <= settings.max_price_levels)
        .with_columns(
            ((pl.col(Life.CANCELLED) - pl.col(FILL_AT)).dt.total_microseconds() / 1_000).alias(CANCEL_AFTER_FILL_MS),
            # the fakes are read just before the fill, or before the cancel when the fill came after it
            pl.min_horizontal(FILL_AT, Life.CANCELLED).alias(PROBE_AT))
    )
    if cycles.is_empty():
        return cycles
    probes = cycles.group_by(CYCLE).agg(pl.col(SYMBOL, ACCOUNT, SIDE).first(), pl.col(PROBE_AT).min(),
                                        pl.col(Order.QUANTITY).sum().alias(FAKE_QTY)).with_columns(
        book_key(pl.col(SYMBOL), pl.col(ACCOUNT), opposite(pl.col(SIDE))).alias("fill_book"),
        # the filled side just after the fill: what the account still offered there once its genuine order traded
        (pl.col(FILL_AT) + timedelta(microseconds=1)).alias(AFTER_FILL))
    # the genuine execution: all the account's fills on the filled side at that instant (a sweep has several)
    executed = fills.join(probes.select(pl.col("fill_book").alias(OwnFill.BOOK)).unique(), on=OwnFill.BOOK,
                          how="semi").group_by(OwnFill.BOOK, OwnFill.TIMESTAMP).agg(
        pl.col(OwnFill.QUANTITY).sum().alias(GENUINE_QTY))
    probes = probes.join(executed, left_on=["fill_book", FILL_AT], right_on=[OwnFill.BOOK, OwnFill.TIMESTAMP],
                         how="left").filter(pl.col(FAKE_QTY) >= settings.min_fake_vs_fill * pl.col(GENUINE_QTY))
    probes = resting_quantity_before(lifecycles, probes, (Life.BOOK, PROBE_AT, SPOOF_SIDE_QTY),
                                     ("fill_book", AFTER_FILL, FILL_SIDE_QTY))
    one_sided = pl.col(SPOOF_SIDE_QTY) >= settings.min_side_imbalance * pl.col(FILL_SIDE_QTY)
    probes = probes.filter(one_sided).select(*CYCLE, SPOOF_SIDE_QTY, FILL_SIDE_QTY, FAKE_QTY, GENUINE_QTY)
    return cycles.join(probes, on=CYCLE, how="inner")


def _findings(orders: pl.DataFrame, tables: BookTables, settings: SpoofingSettings) -> pl.DataFrame:
    """One finding per episode with at least min_cycles cycles that is the account's practice there; `orders`
    holds its large orders."""
    quantity = pl.col(Order.QUANTITY)
    genuine = pl.coalesce(pl.format("o:{}", FILL_ORDER), pl.format("t:{}", FILL_TRADE))
    orders = orders.sort(*CYCLE, Life.KEY, nulls_last=True)  # a fixed order: the same rows kept on every run
    fills = orders.unique(subset=CYCLE, keep="first", maintain_order=True).group_by(EPISODE).agg(
        pl.len().alias("cycles"), pl.col(GENUINE_QTY).sum().alias("opposite_fill_quantity"),
        pl.col(FILL_TRADE).drop_nulls().alias("fill_trades"), pl.col(FILL_AT).min().alias("first_fill"),
        genuine.n_unique().alias("genuine_orders"),
        (pl.col(FAKE_QTY) / pl.col(GENUINE_QTY)).median().alias("large_vs_genuine"),
        side_ratio(SPOOF_SIDE_QTY, FILL_SIDE_QTY).min().alias("min_side_imbalance"))
    episodes = orders.unique(subset=[Life.KEY], keep="first", maintain_order=True).group_by(EPISODE).agg(
        pl.len().alias("large_orders"),
        pl.col(SIDE).unique().sort().alias("sides"),
        quantity.sum().alias("large_quantity"),
        (pl.col(Life.FILLED).sum() / quantity.sum()).alias("large_filled_share"),
        (pl.col(Life.FILLED) > 0).sum().alias("large_orders_hit"),
        (quantity / pl.col(NORMAL)).median().alias("size_vs_account_normal"),
        pl.col(NORMAL).first().alias(NORMAL),
        (quantity / pl.col(BOOK_TYPICAL)).median().alias("size_vs_book_median"),
        pl.col(BOOK_TYPICAL).first().alias(BOOK_TYPICAL),
        pl.col(CANCEL_AFTER_FILL_MS).median().alias("median_cancel_after_fill_ms"),
        pl.col(CANCEL_AFTER_FILL_MS).abs().max().alias("max_cancel_to_fill_ms"),
        ((pl.col(Life.CANCELLED) - pl.col(Life.PLACED)).dt.total_microseconds() / 1_000).median()
        .alias("median_order_life_ms"),
        pl.col(Life.PLACED).min().alias("placed_first"),
        pl.max_horizontal(pl.col(Life.CANCELLED).max(), pl.col(FILL_AT).max()).alias(Finding.WINDOW_END),
        pl.col(Order.ORDER_ID).sort_by(Life.PLACED).alias("order_ids"),
    ).join(fills, on=EPISODE).filter(pl.col("cycles") >= settings.min_cycles)
    if episodes.is_empty():
        return empty_findings()
    episodes = account_practice(
        tables, episodes.with_columns(pl.min_horizontal("placed_first", "first_fill").alias(Finding.WINDOW_START)),
        settings.execution_context_s, "genuine_orders", "large_orders_hit", settings.min_share_of_executions,
        settings.max_two_sided_share)
    rows = []
    for e in episodes.sort(Finding.WINDOW_END).iter_rows(named=True):  # one row per episode: few
        start, end = e[Finding.WINDOW_START], e[Finding.WINDOW_END]
        lag = e["median_cancel_after_fill_ms"]
        metrics = {k: e[k] for k in (
            "cycles", "large_orders", "large_quantity", "large_filled_share", "size_vs_account_normal", NORMAL,
            "size_vs_book_median", BOOK_TYPICAL, "median_cancel_after_fill_ms", "max_cancel_to_fill_ms",
            "median_order_life_ms", "opposite_fill_quantity", "large_vs_genuine", "min_side_imbalance",
            "genuine_orders", "executed_orders", SHARE_OF_EXECUTIONS, TWO_SIDED_SHARE)}
        rows.append({
            Finding.PATTERN: Pattern.SPOOFING.value, Finding.SYMBOL: e[SYMBOL], Finding.USER_IDS: [e[ACCOUNT]],
            Finding.WINDOW_START: start, Finding.WINDOW_END: end,
            Finding.SCORE: 1.0 - 0.5 ** (e["cycles"] - settings.min_cycles + 1),
            Finding.EXPLANATION: (
                f"In {e[SYMBOL]} between {clock(start)} and {clock(end)} UTC, {e[ACCOUNT]} placed large "
                f"{' and '.join(e['sides'])} orders in {e['cycles']} cycles ({e['large_orders']} orders, median "
                f"{number(e['size_vs_account_normal'])}x its normal order size of {number(e[NORMAL])} and "
                f"{number(e['size_vs_book_median'])}x the symbol's typical resting order of "
                f"{number(e[BOOK_TYPICAL])}) and cancelled them each time a median {ms(abs(lag))} "
                f"{'after' if lag >= 0 else 'before'} a fill of its own on the other side "
                f"({number(e['opposite_fill_quantity'])} filled there in all, the large orders a median "
                f"{number(e['large_vs_genuine'])}x each genuine execution, {imbalance_words(e['min_side_imbalance'])}"
                f"); {e['large_filled_share']:.0%} of the large orders executed; {e['genuine_orders']} of the "
                f"{e['executed_orders']} orders it had executed in the symbol around the episode came with them, "
                f"and it had orders on both sides {e[TWO_SIDED_SHARE]:.0%} of that time."),
            Finding.EVIDENCE: evidence_list(e["order_ids"], e["fill_trades"]),
            Finding.METRICS: metrics,
        })
    return findings_frame(rows) if rows else empty_findings()
