"""The monitoring loop outside Dagster (`surveillance monitor start | stop | status`): futures and spot markets
discovered on the MCP server, checked by priority (risk level, then activity, then how overdue), at adaptive intervals
(busy or risky markets more often), a bounded number at a time; per-market risk level and statistics (checks,
failures, latency, alerts) written to a status file after every cycle; alerts appended, de-duplicated.

A futures market's check runs the futures detectors over its history tools (`monitor.monitor_once`); a spot
market's check runs the pump-and-dump detector on its public tape (`spot.spot_check`). Given a database, the
loop also stores, about once a minute (`snapshot_interval_s`), a ticker and an order-book snapshot of every
futures market (the open-interest and book history no MCP tool provides, which its checks and the daily futures
assets read) and the latest deals of every spot market (the tape: `get_deals` answers only the latest trades). Each check reads its window plus the detectors'
trailing-day baseline, so a finding is judged against the market's own day, whatever the check interval."""
from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from surveillance_pipeline.detectors.alerts import write_alerts
from surveillance_pipeline.market.client import MarketDataClient, MarketDataError
from surveillance_pipeline.market.envelope import ExchangeToolError
from surveillance_pipeline.market.monitor import monitor_once
from surveillance_pipeline.market.collect import FAILED, save_snapshots, take_snapshots
from surveillance_pipeline.market.spot import deals_snapshot, spot_check
from surveillance_pipeline.market.tools import DEFAULT_QUOTE, base_of

RISK_RANK = {"HIGH": 3, "MEDIUM": 2, "LOW": 1, "NONE": 0}
STATUS_FILE, PID_FILE = "status.json", "monitor.pid"


@dataclass
class MarketState:
    market: str
    market_type: str = "futures"
    risk_level: str = "NONE"
    volume: float = 0.0
    interval_s: float = 0.0
    next_due: float = 0.0
    last_checked: str | None = None
    checks: int = 0
    failures: int = 0
    alerts: int = 0
    latency_s: float = 0.0
    last_error: str = ""
    note: str = ""                   # what the last check could not judge, or how much tape it had

    def priority(self, now: float) -> tuple:
        return (-RISK_RANK[self.risk_level], -self.volume, self.next_due - now)


@dataclass
class LoopSettings:
    base_interval_s: float = 300.0   # an ordinary market is checked every 5 minutes
    busy_factor: float = 0.5         # busier than the median market: checked twice as often
    risky_factor: float = 0.25       # a HIGH / MEDIUM alert in its last check: four times as often
    max_concurrent: int = 4          # markets checked at once
    window_s: float = 3600.0         # each check covers the last hour (more after a long gap) ...
    baseline_s: float = 86_400.0     # ... read with the detectors' trailing day before it
    snapshot_interval_s: float = 60.0  # ticker and order-book snapshots of every market (with a database)
    rediscover_s: float = 3600.0     # how often the market list is refreshed
    spot: bool = True                # spot markets too (their public tape, for pump-and-dump)
    kline_limit: int = 1000          # 1-minute k-lines a futures check asks (CoinEx answers at most 1000)


@dataclass
class MonitoringLoop:
    client_factory: object           # () -> MarketDataClient (one per worker: clients are not shared)
    out_dir: Path
    settings: LoopSettings = field(default_factory=LoopSettings)
    clock: object = time.time
    states: dict[str, MarketState] = field(default_factory=dict)
    seen_alerts: set[str] = field(default_factory=set)
    cycles: int = 0
    stopping: bool = False
    discovered_at: float = -1e18
    now_override: datetime | None = None  # the end of every window (replays); None: the wall clock
    db: object = None                # a Database: snapshots are stored there and read by the checks
    snapshots_at: float = -1e18
    snapshot_failures: int = 0
    snapshot_error: str = ""
    discovery_errors: dict[str, str] = field(default_factory=dict)
    cycle_errors: int = 0
    cycle_error: str = ""

    def discover(self) -> None:
        client = self.client_factory()
        volumes: dict[tuple[str, str], float] = {}
        for market_type in ("futures", "spot") if self.settings.spot else ("futures",):
            for market in client.list_markets(market_type)["market"].to_list():
                try:
                    ticker = client.get_ticker(base_of(market), DEFAULT_QUOTE, market_type)
                except (ExchangeToolError, MarketDataError) as error:  # its volume unknown: still watched
                    ticker = pl.DataFrame()
                    self.discovery_errors[_key(market, market_type)] = f"{type(error).__name__}: {error}"[:300]
                volumes[(market, market_type)] = (float(ticker["value"][0] or 0.0) if ticker.height
                                                  and "value" in ticker.columns else 0.0)
        median = sorted(volumes.values())[len(volumes) // 2] if volumes else 0.0
        for (market, market_type), volume in volumes.items():
            state = self.states.setdefault(_key(market, market_type), MarketState(market, market_type))
            state.volume = volume
            state.interval_s = self._interval(state, median)
        for gone in set(self.states) - {_key(m, t) for m, t in volumes}:
            del self.states[gone]
        self.discovered_at = self.clock()

    def _interval(self, state: MarketState, median_volume: float) -> float:
        interval = self.settings.base_interval_s
        if state.volume > median_volume:
            interval *= self.settings.busy_factor
        if RISK_RANK[state.risk_level] >= RISK_RANK["MEDIUM"]:
            interval *= self.settings.risky_factor
        return interval

    def due(self) -> list[MarketState]:
        now = self.clock()
        ready = [s for s in self.states.values() if s.next_due <= now]
        return sorted(ready, key=lambda s: s.priority(now))[: self.settings.max_concurrent]

    def check(self, state: MarketState) -> pl.DataFrame:
        began = time.perf_counter()
        end = self.now_override or datetime.now(UTC)
        since = datetime.fromisoformat(state.last_checked) if state.last_checked else None
        window_start = end - timedelta(seconds=self.settings.window_s)
        first = min(since, window_start) if since else window_start
        try:
            if state.market_type == "spot":  # the pump detector reads its own baseline before `first`
                check = spot_check(self.client_factory(), state.market, first, end, db=self.db)
                alerts = check.alerts
                state.note = (f"tape of {check.trades} trades covers {check.covered_hours:.1f} h, "
                              f"{check.possible_gaps} poll(s) may have missed trades"
                              + (f"; not assessable: {', '.join(check.not_assessed)}" if check.not_assessed else ""))
            else:
                result = monitor_once(self.client_factory(), [state.market],
                                      first - timedelta(seconds=self.settings.baseline_s), end, db=self.db,
                                      kline_limit=self.settings.kline_limit)
                # the baseline's own episodes were reported by earlier checks: only what reaches this window
                alerts = result.alerts.filter(pl.col("window_end") >= first) if result.alerts.height else result.alerts
                state.note = (f"not assessable: {', '.join(result.not_assessed)}" if result.not_assessed else "")
            state.risk_level = max([*alerts["risk_level"].to_list(), "NONE"], key=RISK_RANK.get)
            state.alerts += alerts.height
            state.last_error = ""
        except Exception as error:  # counted and shown in the status, the loop goes on with other markets
            alerts = pl.DataFrame()
            state.failures += 1
            state.last_error = f"{type(error).__name__}: {error}"[:300]
        state.checks += 1
        state.latency_s = time.perf_counter() - began
        state.last_checked = end.isoformat()
        state.next_due = self.clock() + (state.interval_s or self.settings.base_interval_s) * (
            self.settings.risky_factor if RISK_RANK[state.risk_level] >= RISK_RANK["MEDIUM"] else 1.0)
        return alerts

    def run_cycle(self) -> int:
        if self.clock() - self.discovered_at >= self.settings.rediscover_s:
            self.discover()
        if self.db is not None and self.clock() - self.snapshots_at >= self.settings.snapshot_interval_s:
            self.snapshot()
        ready = self.due()
        with ThreadPoolExecutor(max_workers=max(1, self.settings.max_concurrent)) as pool:
            found = list(pool.map(self.check, ready))
        new = [f for f in found if f.height]
        if new:
            self._append_alerts(pl.concat(new, how="diagonal_relaxed"))
        self.cycles += 1
        self.write_status()
        return len(ready)

    def snapshot(self) -> int:
        """Store a ticker and an order-book snapshot of every market (a failure is counted, the loop goes on)."""
        self.snapshots_at = self.clock()
        try:
            client = self.client_factory()
            futures = sorted(s.market for s in self.states.values() if s.market_type == "futures")
            snaps, missing = take_snapshots(client, futures, taken=self.now_override)
            errors = [f"{k}: {v}" for k, v in missing.items() if v.startswith(FAILED)]
            for state in [s for s in self.states.values() if s.market_type == "spot"]:
                try:
                    snaps.append(deals_snapshot(client, state.market, taken=self.now_override))
                except (ExchangeToolError, MarketDataError) as error:  # the others' snapshots are kept
                    errors.append(f"deals {state.market}: {error}")
            if errors:
                self.snapshot_failures += 1
                self.snapshot_error = "; ".join(errors)[:300]
            return save_snapshots(self.db, snaps)
        except Exception as error:  # shown in the status; the checks go on without this minute's snapshot
            self.snapshot_failures += 1
            self.snapshot_error = f"{type(error).__name__}: {error}"[:300]
            return 0

    def _append_alerts(self, alerts: pl.DataFrame) -> None:
        fresh = alerts.filter(~pl.col("alert_id").is_in(list(self.seen_alerts)))
        self.seen_alerts |= set(alerts["alert_id"].to_list())
        path = self.out_dir / "alerts.json"
        earlier = pl.DataFrame(json.loads(path.read_text())) if path.exists() else None
        if fresh.height:
            combined = fresh if earlier is None or earlier.is_empty() else pl.concat([
                earlier.with_columns(pl.col("window_start", "window_end").str.to_datetime(time_zone="UTC"),
                                     pl.col("thresholds").map_elements(json.dumps, return_dtype=pl.String)),
                fresh], how="diagonal_relaxed")
            write_alerts(combined.select(fresh.columns), self.out_dir)

    def write_status(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        status = {"pid": os.getpid(), "cycles": self.cycles, "updated_at": datetime.now(UTC).isoformat(),
                  "markets": {m: asdict(s) for m, s in sorted(self.states.items())},
                  "totals": {"checks": sum(s.checks for s in self.states.values()),
                             "failures": sum(s.failures for s in self.states.values()),
                             "alerts": sum(s.alerts for s in self.states.values()),
                             "snapshot_failures": self.snapshot_failures, "snapshot_error": self.snapshot_error,
                             "cycle_errors": self.cycle_errors, "cycle_error": self.cycle_error, "discovery_errors": self.discovery_errors}}
        tmp = self.out_dir / f".{STATUS_FILE}.tmp"
        tmp.write_text(json.dumps(status, indent=2, default=str))
        tmp.replace(self.out_dir / STATUS_FILE)

    def run(self, max_cycles: int | None = None, sleep_s: float = 1.0) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / PID_FILE).write_text(str(os.getpid()))
        try:
            while not self.stopping and (max_cycles is None or self.cycles < max_cycles):
                try:
                    checked = self.run_cycle()
                except Exception as error:  # e.g. the market list itself unreachable: shown, tried again
                    self.cycle_errors += 1
                    self.cycle_error = f"{type(error).__name__}: {error}"[:300]
                    self.cycles += 1
                    self.write_status()
                    checked = 0
                if not checked:
                    time.sleep(sleep_s)
        finally:
            (self.out_dir / PID_FILE).unlink(missing_ok=True)


def _key(market: str, market_type: str) -> str:
    return market if market_type == "futures" else f"{market}@{market_type}"


def client_factory(url: str):
    return lambda: MarketDataClient(url=url, retries=1)


def read_status(out_dir: Path) -> dict | None:
    path = Path(out_dir) / STATUS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def stop(out_dir: Path) -> int | None:
    """SIGTERM to the running loop (its pid file); None when no loop runs there."""
    path = Path(out_dir) / PID_FILE
    if not path.exists():
        return None
    pid = int(path.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    return pid
