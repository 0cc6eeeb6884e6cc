"""Circular trading: rings of 3+ accounts passing the same quantity round, on hand-made tapes."""
from __future__ import annotations

import random

import polars as pl
import pytest

from surveillance_pipeline.contract import Pattern
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs
from surveillance_pipeline.detectors.circular import (
    CircularTradingSettings,
    detect_circular_trading,
)
from tests.detectors.conftest import (
    assert_episodes_found, assert_no_findings, at, detect_generated, metrics, trades_day,
)
from tests.detectors.conftest import tape as trades_tape


def tape(rows: list[tuple], symbol: str = "ETHUSDT") -> pl.DataFrame:
    """Trades from (seconds after T0, price, quantity, seller, buyer); ids t0, t1, ... in row order."""
    return trades_tape([(s, p, q, b, se) for s, p, q, se, b in rows], symbol, side="sell")


def ring(members: list[str], laps: int, qty: float = 0.5, price: float = 3_000.0, hop_s: float = 30.0,
         pause_s: float = 60.0, start: float = 0.0, fee: float = 0.0) -> list[tuple]:
    """members[0] -> members[1] -> ... -> members[0], `laps` times; each hop passes on what it received less
    `fee` (a share), the price a cent apart from hop to hop."""
    rows, t = [], start
    for _ in range(laps):
        q = qty
        for hop, seller in enumerate(members):
            rows.append((t, price + 0.01 * (hop % 2), q, seller, members[(hop + 1) % len(members)]))
            q *= 1 - fee
            t += hop_s
        t += pause_s
    return rows


def detect(trades: pl.DataFrame, **settings) -> pl.DataFrame:
    return detect_circular_trading(DetectionInputs(trades=trades), CircularTradingSettings(**settings))


def test_three_account_ring_going_round_twice_is_one_finding():
    rows = ring(["c", "a", "b"], laps=2)  # hops at 0, 30, 60, then 150, 180, 210
    noise = [(15 + 40 * i, 3_000.0 + i, 0.1 * (i + 1), "mm", f"r{i}") for i in range(6)]
    frame = detect(tape(sorted(rows + noise)))
    assert frame.schema == pl.Schema(FINDING_SCHEMA)
    [finding] = frame.to_dicts()
    assert finding["pattern"] == Pattern.CIRCULAR_TRADING
    assert finding["symbol"] == "ETHUSDT"
    assert finding["user_ids"] == ["a", "b", "c"]
    assert finding["window_start"] == at(0) and finding["window_end"] == at(210)
    assert len(finding["evidence"]) == 6 and all(e.startswith("trade:") for e in finding["evidence"])
    m = metrics(finding)
    assert m["ring_size"] == 3 and m["laps"] == pytest.approx(2.0) and m["trades"] == 6
    assert m["volume"] == pytest.approx(3.0) and m["ring_flow_share"] == pytest.approx(1.0)
    assert m["lap_qty_spread"] == pytest.approx(0.0)
    assert finding["score"] > 0.8
    assert "3 accounts passed ETHUSDT round the ring" in finding["explanation"]
    assert "2 times in 3.5 min" in finding["explanation"]


def test_four_and_five_account_rings_with_fees_taken_on_the_way():
    four = ring(["a", "b", "c", "d"], laps=3, qty=2.0, fee=0.001)
    five = ring(["p", "q", "r", "s", "u"], laps=2, qty=7.0, start=3_600, hop_s=45)
    frame = detect(tape(four + five))
    assert frame["user_ids"].to_list() == [["a", "b", "c", "d"], ["p", "q", "r", "s", "u"]]
    first, second = (metrics(f) for f in frame.to_dicts())
    assert first["ring_size"] == 4 and first["laps"] == pytest.approx(3.0)
    assert first["lap_qty_spread"] == pytest.approx(0.003, rel=0.01)  # three 0.1 % fees
    assert second["ring_size"] == 5 and second["trades"] == 10
    assert detect(tape(five), max_ring_size=4).height == 0  # a ring larger than searched for


def test_six_account_ring_fires():
    rows = ring(["p", "q", "r", "s", "u", "v"], laps=2, qty=3.0, fee=0.001, hop_s=50)
    [finding] = detect(tape(rows)).to_dicts()
    m = metrics(finding)
    assert finding["user_ids"] == ["p", "q", "r", "s", "u", "v"]
    assert m["ring_size"] == 6 and m["laps"] == pytest.approx(2.0) and m["trades"] == 12
    assert "6 accounts passed ETHUSDT round the ring p -> q -> r -> s -> u -> v -> p" in finding["explanation"]
    assert detect(tape(rows), max_ring_size=5).height == 0


def in_pieces(rows: list[tuple], hops: set[int], shares: tuple[float, ...] = (0.6, 0.4),
              every_s: float = 3.0) -> list[tuple]:
    """The hops at positions `hops` of every lap (rows in lap order) passed on in pieces `every_s` apart."""
    ring_size = len({seller for _, _, _, seller, _ in rows})
    out = []
    for i, (t, p, q, seller, buyer) in enumerate(rows):
        if i % ring_size in hops:
            out += [(t + every_s * k, p, q * share, seller, buyer) for k, share in enumerate(shares)]
        else:
            out.append((t, p, q, seller, buyer))
    return out


def test_a_hop_passed_on_in_pieces_still_closes_the_ring():
    rows = in_pieces(ring(["a", "b", "c", "d"], laps=2, qty=2.0), hops={1})  # b hands c 1.2 then 0.8 every lap
    [finding] = detect(tape(rows)).to_dicts()
    m = metrics(finding)
    assert m["ring_size"] == 4 and m["laps"] == pytest.approx(2.0)
    assert m["trades"] == 10 and len(finding["evidence"]) == 10  # every piece is evidence
    assert m["qty_min"] == pytest.approx(2.0) and m["volume"] == pytest.approx(16.0)
    assert m["ring_flow_share"] == pytest.approx(1.0)
    assert detect(tape(rows), hop_piece_gap_s=1.0).height == 0  # pieces not joined: no hop of the size


def test_every_hop_in_pieces_and_a_fast_ring_are_counted_once():
    pieces = in_pieces(ring(["a", "b", "c"], laps=3, qty=1.0), hops={0, 1, 2}, shares=(0.5, 0.3, 0.2), every_s=2.0)
    [finding] = detect(tape(pieces)).to_dicts()
    assert metrics(finding)["laps"] == pytest.approx(3.0)
    # laps closer together than the piece gap: a -> b trades of successive laps are not one hop in pieces
    fast = ring(["a", "b", "c"], laps=3, qty=1.0, hop_s=5, pause_s=5)
    [finding] = detect(tape(fast)).to_dicts()
    assert metrics(finding)["laps"] == pytest.approx(3.0) and metrics(finding)["trades"] == 9


def test_laps_far_apart_and_reversing_direction_are_one_ring():
    rows = ring(["a", "b", "c"], laps=1) + ring(["a", "c", "b"], laps=1, start=1_500) \
        + ring(["a", "b", "c"], laps=1, start=3_000)  # 25 min between laps, the second the other way round
    [finding] = detect(tape(rows)).to_dicts()
    assert metrics(finding)["laps"] == pytest.approx(3.0)
    assert detect(tape(rows), episode_gap_s=900).height == 0  # cut into single laps


def test_one_lap_is_not_enough_by_default():
    rows = ring(["a", "b", "c"], laps=1)
    assert detect(tape(rows)).height == 0
    assert detect(tape(rows), min_laps=1).height == 1


def test_chance_chain_at_different_sizes_far_apart_is_not_a_ring():
    # a busy market: a sells to b, b to c, c to a, twice over, but in unrelated sizes and hours apart
    rows = [(0, 3_000.0, 0.5, "a", "b"), (2_400, 3_010.0, 1.3, "b", "c"), (5_000, 2_990.0, 0.2, "c", "a"),
            (9_000, 3_020.0, 0.5, "a", "b"), (9_100, 3_020.0, 0.9, "b", "c"), (9_200, 3_020.0, 0.5, "c", "a")]
    assert detect(tape(rows)).height == 0
    # the same sizes, but each hop waits an hour: nobody passes a position on that slowly to carry no risk
    slow = ring(["a", "b", "c"], laps=2, hop_s=3_600)
    assert detect(tape(slow)).height == 0
    hesitant = ring(["a", "b", "c"], laps=2, hop_s=900)  # a lap in 45 min, but 15 min before each hand-on
    assert detect(tape(hesitant)).height == 0
    assert detect(tape(hesitant), max_hop_gap_s=1_000).height == 1


def test_hops_must_follow_each_other_in_cycle_order():
    # the same three transfers each lap, but c -> a comes first: the asset never travels round in order
    rows = [(0, 3_000.0, 0.5, "c", "a"), (30, 3_000.0, 0.5, "b", "c"), (60, 3_000.0, 0.5, "a", "b")]
    assert detect(tape(rows), min_laps=1).height == 0


def test_two_accounts_trading_back_and_forth_are_not_a_ring():
    rows = [(30 * i, 3_000.0, 0.5, *(("a", "b") if i % 2 == 0 else ("b", "a"))) for i in range(12)]
    assert detect(tape(rows), min_laps=1).height == 0


def test_busy_accounts_meeting_both_ways_in_many_sizes_are_not_a_ring():
    # two same-size laps inside heavy two-way trading among the three: a small part of their mutual flow
    laps = ring(["a", "b", "c"], laps=2, qty=0.5)
    pairs = [("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"), ("c", "a"), ("a", "c")]
    busy = [(5 + 7 * i, 3_000.0, 0.3 + 0.1 * (i % 9), *pairs[i % 6]) for i in range(30)]
    rows = sorted(laps + busy)
    assert detect(tape(rows)).height == 0
    [finding] = detect(tape(rows), min_ring_flow_share=0.0).to_dicts()  # the flow share is what keeps it quiet
    assert metrics(finding)["ring_flow_share"] < 0.3


def test_a_small_market_of_accounts_trading_each_other_at_random_in_round_sizes_is_not_a_ring():
    # 12 accounts trading each other every 3 s for two hours in four round sizes: chains of one size closing
    # back on their origin twice in a row happen by chance, but among accounts that trade with each other all
    # the time, so the laps are a small part of the members' mutual trading around them
    rng = random.Random(3)
    accounts = [f"a{i}" for i in range(12)]
    rows = [(3.0 * i, 3_000.0 + rng.randint(-5, 5), rng.choice([0.1, 0.5, 1.0, 2.0]), *rng.sample(accounts, 2))
            for i in range(2_400)]
    assert detect(tape(rows)).height == 0
    chance = detect(tape(rows), min_ring_flow_share=0.0)
    assert chance.height > 0 and all(metrics(f)["ring_flow_share"] < 0.3 for f in chance.to_dicts())


def test_quantity_and_price_tolerances():
    drifting = ring(["a", "b", "c"], laps=2, fee=0.02)  # 2 % less at every hop: 4 % off by the third
    assert detect(tape(drifting)).height == 0
    assert detect(tape(drifting), quantity_tolerance=0.05).height == 1
    far = [(t, p * (1 + 0.004 * (i % 3)), q, s, b) for i, (t, p, q, s, b) in enumerate(ring(["a", "b", "c"], 2))]
    assert detect(tape(far)).height == 0  # 80 bps apart within a lap
    assert detect(tape(far), price_tolerance_bps=100).height == 1
    band = [(t, p * (1 + 0.003 * (i % 2)), q, s, b) for i, (t, p, q, s, b) in enumerate(ring(["a", "b", "c"], 2))]
    assert detect(tape(band)).height == 1  # 30 bps apart: the market of a lap's minutes
    assert detect(tape(band), price_tolerance_bps=25).height == 0


def test_rings_are_per_symbol():
    rows = ring(["a", "b", "c"], laps=2)
    mixed = pl.concat([tape(rows[:3], "ETHUSDT"), tape(rows[3:], "BTCUSDT").with_columns(
        pl.format("b{}", pl.col("trade_id")).alias("trade_id"))])
    assert detect(mixed).height == 0
    assert detect(pl.concat([tape(rows, "ETHUSDT"), tape(rows, "BTCUSDT")]))["symbol"].to_list() == \
        ["BTCUSDT", "ETHUSDT"]


def test_anonymous_tape_and_disabled_detector_give_no_findings():
    anonymous = tape([(10 * i, 100.0, 1.0, None, None) for i in range(10)])
    assert detect(anonymous).height == 0
    assert detect(anonymous).schema == pl.Schema(FINDING_SCHEMA)
    assert detect(tape(ring(["a", "b", "c"], laps=3)), enabled=False).height == 0


def test_settings_reject_out_of_range_values():
    with pytest.raises(ValueError):
        CircularTradingSettings(max_ring_size=2)
    with pytest.raises(ValueError):
        CircularTradingSettings(min_laps=0.5)


# -- generated scenarios -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_day_rings_are_found_once(seed):
    findings, labels = detect_generated(detect_circular_trading, CircularTradingSettings(), trades_day(seed))
    assert_episodes_found(findings, labels, Pattern.CIRCULAR_TRADING)


def test_generated_clean_day_gives_no_findings():
    assert_no_findings(*detect_generated(detect_circular_trading, CircularTradingSettings(), trades_day(4, clean=True)))
