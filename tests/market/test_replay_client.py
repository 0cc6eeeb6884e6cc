"""The MCP client against our replay server, over the protocol: in-process, streamable HTTP and stdio."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from surveillance_pipeline.market import envelope as env
from surveillance_pipeline.market.client import CircuitBreaker, CircuitOpen, MarketDataClient, MarketDataError
from surveillance_pipeline.market.replay import UTC_MS, ReplayStore, build_server

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
REAL_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "real_samples"


def _ms(minutes: float) -> int:
    return int(T0.timestamp() * 1000 + minutes * 60_000)


@pytest.fixture(scope="module")
def store() -> ReplayStore:
    deals = pl.DataFrame({
        "market": ["BTCUSDT"] * 4 + ["ETHUSDT"], "market_type": ["futures"] * 4 + ["spot"],
        "created_at": [_ms(0), _ms(0.5), _ms(1.2), _ms(2), _ms(1)], "deal_id": ["1", "2", "3", "4", "9"],
        "side": ["buy", "sell", "buy", "buy", "sell"], "price": [100.0, 101.0, 99.0, 102.0, 10.0],
        "amount": [1.0, 2.0, 1.5, 0.5, 3.0]}).with_columns(pl.col("created_at").cast(UTC_MS))
    funding = pl.DataFrame({"market": ["BTCUSDT"] * 3, "market_type": ["futures"] * 3,
                            "funding_time": [_ms(-960), _ms(-480), _ms(0)],
                            "theoretical_funding_rate": [0.0001, 0.0003, 0.002],
                            "actual_funding_rate": [0.0001, 0.0002, 0.0015]}).with_columns(pl.col("funding_time").cast(UTC_MS))
    depth = pl.DataFrame({"market": ["BTCUSDT"] * 4, "market_type": ["futures"] * 4,
                          "updated_at": [_ms(2)] * 4, "side": ["ask", "ask", "bid", "bid"], "level": [0, 1, 0, 1],
                          "price": [102.5, 103.0, 101.5, 101.0], "amount": [1.0, 4.0, 2.0, 6.0]}).with_columns(
        pl.col("updated_at").cast(UTC_MS), pl.col("level").cast(pl.Int32))
    tiers = pl.DataFrame({"market": ["BTCUSDT"] * 2, "market_type": ["futures"] * 2, "tier": [1, 2],
                          "amount": [10_000.0, 50_000.0], "leverage": [100.0, 50.0],
                          "maintenance_margin_rate": [0.005, 0.01], "min_initial_margin_rate": [0.01, 0.02]}
                         ).with_columns(pl.col("tier").cast(pl.Int32))
    mark = pl.DataFrame({"market": ["BTCUSDT"], "market_type": ["futures"], "created_at": [_ms(2)],
                         "mark_price": [101.9]}).with_columns(pl.col("created_at").cast(UTC_MS))
    return ReplayStore({"deals": deals, "funding": funding, "depth": depth, "tiers": tiers, "mark": mark})


def test_every_tool_in_process_typed(store):
    client = MarketDataClient(server=build_server(store))
    ticker = client.get_futures_ticker("BTC")
    row = ticker.row(0, named=True)
    assert (row["market"], row["last"], row["high"], row["low"], row["volume"], row["mark_price"]) == \
        ("BTCUSDT", 102.0, 102.0, 99.0, 5.0, 101.9)
    assert ticker.schema["last"] == pl.Float64  # numbers arrive as strings and leave typed
    book = client.get_futures_orderbook("BTC", limit=5)
    assert book.filter(pl.col("side") == "bid")["price"].to_list() == [101.5, 101.0]
    bars = client.get_kline("BTC", period="1min", market_type="futures")
    assert bars["open"].to_list() == [100.0, 99.0, 102.0] and bars["volume"].to_list() == [3.0, 1.5, 0.5]
    assert client.get_deals("BTC", market_type="futures", limit=2)["deal_id"].to_list() == ["4", "3"]
    history = client.get_funding_rate_history("BTC", start_ms=_ms(-600))
    assert history["actual_funding_rate"].to_list() == [0.0015, 0.0002]
    assert client.get_funding_rate("BTC").row(0, named=True)["latest_funding_rate"] == 0.0015
    tiers = client.get_margin_tiers("BTC")
    assert tiers["leverage"].to_list() == [100.0, 50.0] and tiers["tier"].to_list() == [1, 2]
    assert client.list_markets("futures")["market"].to_list() == ["BTCUSDT"]
    assert client.get_ticker("ETH")["last"].to_list() == [10.0]  # spot
    with pytest.raises(env.Unavailable):  # not recorded: said so, never invented
        client.get_liquidation_history("BTC")
    with pytest.raises(env.ExchangeToolError, match="get_funding_rate: code 3639"):
        client.get_funding_rate("DOGE")
    with pytest.raises(ValueError, match="period"):
        client.get_kline("BTC", period="2min")


def test_store_round_trip(store, tmp_path):
    store.save(tmp_path / "replay")
    loaded = ReplayStore.load(tmp_path / "replay")
    assert set(loaded.tables) == set(store.tables) and loaded.table("deals").equals(store.table("deals"))
    with pytest.raises(FileNotFoundError):
        ReplayStore.load(tmp_path / "nowhere")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamable_http_and_stdio(store, tmp_path):
    store.save(tmp_path / "replay")
    port = _free_port()
    command = [sys.executable, "-m", "surveillance_pipeline.cli", "market", "serve", "--data", str(tmp_path / "replay")]
    server = subprocess.Popen([*command, "--transport", "http", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        client = MarketDataClient(url=f"http://127.0.0.1:{port}/mcp", timeout_seconds=5, retries=10,
                                  backoff_seconds=0.3)
        assert client.get_futures_ticker("BTC")["last"].to_list() == [102.0]  # retried until the server is up
        assert client.get_funding_rate("BTC")["latest_funding_rate"].to_list() == [0.0015]
    finally:
        server.terminate()
        server.wait(timeout=10)
    stdio = MarketDataClient(command=sys.executable, args=command[1:], env=dict(os.environ), timeout_seconds=30)
    assert stdio.get_deals("BTC", market_type="futures", limit=1)["deal_id"].to_list() == ["4"]


def test_outage_is_retried_then_fails_fast_behind_the_circuit_breaker():
    now = [0.0]
    breaker = CircuitBreaker(failures_to_open=2, cooldown_seconds=30, clock=lambda: now[0])
    client = MarketDataClient(url=f"http://127.0.0.1:{_free_port()}/mcp", timeout_seconds=2, retries=1,
                              backoff_seconds=0.01, breaker=breaker)
    for _ in range(2):
        with pytest.raises(MarketDataError, match="get_ticker on http://127.0.0.1"):
            client.get_ticker("BTC")
    assert client.failed_calls == 4  # each call tried twice
    began = time.perf_counter()
    with pytest.raises(CircuitOpen):
        client.get_ticker("BTC")
    assert client.failed_calls == 4  # failed fast: no connection attempted
    now[0] = 31.0  # after the cool-down one call may try again
    with pytest.raises(MarketDataError):
        client.get_ticker("BTC")
    assert client.failed_calls == 6 and time.perf_counter() - began < 30


@pytest.mark.skipif(not REAL_SAMPLES.exists(), reason=f"{REAL_SAMPLES} is absent")
def test_real_samples_replay():
    from surveillance_pipeline.market.samples import from_real_samples

    client = MarketDataClient(server=build_server(from_real_samples(REAL_SAMPLES)))
    assert set(client.list_markets("futures")["market"]) == {"BTCUSDT", "XRPUSDT"}
    tickers = client.get_all_futures_tickers()
    assert tickers.height == 2 and tickers["last"].is_not_null().all()
    assert client.get_funding_rate_history("XRP", limit=200).height == 91
    assert client.get_futures_orderbook("BTC", limit=20).height == 40
