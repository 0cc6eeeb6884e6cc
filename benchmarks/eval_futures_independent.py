"""Futures detectors against labelled perpetual markets written independently of them.

The markets come from `benchmarks/futures_independent_gen.py` (BTCUSDT, ETHUSDT, SOLUSDT perpetuals, 3 days
each per seed): one latent price / premium / open-interest model per market from which index, mark, premium
index, basis, open interest, 8-hourly funding (time-weighted premium + clamped interest term, capped), forced
liquidations, 1-minute k-lines and 20-level book snapshots are all derived, so the tables agree with each
other. Episodes follow the public descriptions of each abuse (CFTC / ESMA on settlement-price manipulation,
exchange write-ups on stop hunts, cascades and funding farming), NOT the detectors: the author of this file
did not read `futures_detectors.py` (beyond `futures_alerts`' signature), `futures_scenarios.py` or their
tests. Parameter ranges are wide on purpose: the low end is meant to be subtle (near the market's noise), the
high end blatant. Moves are given for BTC; ETH x1.3, SOL x1.8 (their usual volatility ratio).

  funding_rate_manipulation  premium pushed 8-150 bps (log-uniform; BTC minute premium noise is ~1-3 bps, a
                 few bps already move an 8 h rate that is usually 1 bp) for 3-60 min before a settlement (ramp
                 1-5 min), let go 0-3 min after it over 1-10 min; index follows 0-10 %; volume x1.3-4; OI +0-3 %;
                 half with a supporting book side (x2.5). `funding_shift_bps` is the resulting move of the
                 time-weighted interval premium (what the settlement sees).
  liquidation_hunting  a 0.5-5 % spike (log-uniform; stop hunts of 1-3 % on BTC are common, 5 % is a big one)
                 either inside one minute (a wick; 50-100 % recovered by the close) or over 1-4 minutes; 60-100 %
                 reverted within 1-15 min; 8-200 forced orders on the hunted side (1.5-6x the usual size) at the
                 extreme, 0-10 % on the other side; index follows 0-30 %; volume x3-12; half with the hunted
                 book side thinned (x0.2-0.7) in the minutes before. Down 60 %, up 40 %.
  forced_liquidation  a 1.5-10 % move (log-uniform) over 3-30 min, accelerating; 40-800 forced orders on one
                 side whose total is 30-90 % of an open-interest fall of 2-15 %; index follows 70-95 % (the perp
                 leads, arbitrage closes the gap 3-20 min after); only 0-30 % retraced over 30-120 min; volatility x1.3-2.5
                 afterwards. Down 70 %.
  basis_manipulation  the perp held 10-150 bps (log-uniform) from the index for 5-60 min (ramp and release
                 1-10 min each, 5-25 % wobble), at least 45 min from any settlement, index unmoved; volume
                 x1.2-3 on the ramps; OI +0-3 %; half with a supporting book wall (x2-8 on that side).
  position_concentration  open interest +3-25 % (log-uniform; organic hourly OI changes are ~0.5-1 %) within
                 2-20 min, 70-100 % of it still there after 2-8 h; premium push 0-8 bps, index push 0-0.3 %;
                 traded volume 1-2x the position.
  funding_rate_farming  on a day of extreme funding (0.05-0.3 % per 8 h; premium mean raised 1-3 h ahead
                 and 6-12 h before the first farmed settlement), 2-3 settlements in a row where open interest
                 rises 1-10 % 5-45 min before (over 1-8 min) and falls 0-15 min after (over 1-8 min); premium
                 leaned against by 0-3 bps. One label per farmed settlement.
Look-alikes with no label (every seed): a trending market whose funding stays high for days (premium mean
5-30 bps ramped over 2-8 h, no release at settlements); news moves of 1.5-8 % over 1-5 min with index and perp
together (premium blip 0-8 bps; 60-110 % retained; more liquidations only through the ordinary move-dependent
intensity, capped at x8); organic open-interest growth of 5-20 % over 2-6 h; volatile hours (volatility
x2-3 the usual, liquidations x2-4 for 45-90 min; shocks clipped at 2.5 sd there: no single spike); a market maker's walls (x8-40 at levels 1-15, lasting 1-8
min, 1-3 at a time, for 1-3 h); a thin stretch every market-day at night (spread x3-8, depth x0.2-0.5, premium
noise x1.5-2.5, volume x0.3-0.6 for 1-3 h). Items of different kinds are kept 60 min apart on a market (30 min
for thin hours) so each alert lands on one thing; no episode in the first 6 hours (history).

For every seed a second set of the same markets and days is generated with NO episode (look-alikes and
regimes as usual): every alert there is false; they are counted per market-day.

Prints per-seed and pooled `evaluate` tables, every missed episode with its parameters (and other alerts on
it), every false alert with its explanation and what it landed on, recall per parameter third / value, and
which look-alikes were flagged. Writes everything to data/bench/eval_futures_independent/results.json.
Asserts nothing; changes no threshold.

Usage: .venv/bin/python benchmarks/eval_futures_independent.py [--seeds 1 2 ... 10] [--days 3] [--quiet]
       [--depth-every 1] [--out data/bench/eval_futures_independent/results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import polars as pl
from futures_independent_gen import PATTERNS, Generated, Item, generate

from surveillance_pipeline.contract import LABEL_SCHEMA
from surveillance_pipeline.evaluation import EvaluationSettings, evaluate
from surveillance_pipeline.market.futures_detectors import futures_alerts

CLEAN_SEED_OFFSET = 10_000


# ---- running one generated set -----------------------------------------------------------------------------

def detect(gen: Generated) -> tuple[pl.DataFrame, float]:
    tick = time.perf_counter()
    alerts = futures_alerts(gen.tables)
    if "user_ids" not in alerts.columns:
        alerts = alerts.with_columns(pl.lit("").alias("user_ids"))
    return alerts, time.perf_counter() - tick


def touching(alert: dict, items: list[Item], slack: timedelta) -> list[Item]:
    """Items an alert lands on (same market, windows overlapping within the slack): episodes first, then
    look-alikes that are events, then regimes (days of high funding)."""
    a0, a1 = alert["window_start"], alert["window_end"]
    hits = [it for it in items if it.market == alert["symbol"] and a0 <= it.end_dt + slack
            and a1 >= it.start_dt - slack]
    return sorted(hits, key=lambda it: (not it.labelled, it.regime, it.start))


def describe(it: Item, alert: dict | None = None) -> str:
    if it.labelled:
        return f"episode {it.episode_id} ({it.kind})"
    if not it.regime:
        return f"LOOK-ALIKE {it.kind}"
    return f"LOOK-ALIKE {it.kind} (regime, {regime_phase(it, alert)})" if alert else f"LOOK-ALIKE {it.kind} (regime)"


def regime_phase(it: Item, alert: dict) -> str:
    """Where in a high-funding regime an alert starts: while the premium builds, on the plateau, or as it
    fades (farming days only)."""
    minute = (alert["window_start"] - it.start_dt).total_seconds() / 60 + it.start
    if minute < it.start + it.params["ramp_hours"] * 60:
        return "premium building"
    if minute >= it.params.get("release_from_minute", float("inf")):
        return "premium fading"
    return "plateau"


def hm(dt) -> str:
    return dt.strftime("%d %H:%M")


def fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def run_set(seed: int, days: int, clean: bool, depth_every: int, settings: EvaluationSettings,
            verbose: bool) -> dict:
    tick = time.perf_counter()
    gen = generate(seed, days, clean=clean, depth_every=depth_every)
    built = time.perf_counter() - tick
    alerts, detect_s = detect(gen)
    labels = gen.labels.cast(LABEL_SCHEMA)
    report = evaluate(alerts, labels, settings)
    slack = timedelta(minutes=settings.slack_minutes)
    what = "clean" if clean else "episodes"
    rows = {name: frame.height for name, frame in gen.tables.items()}
    print(f"\n== seed {seed} {what}: {len(gen.markets)} markets x {days} days, {labels.height} episodes, "
          f"{sum(not i.labelled for i in gen.items)} look-alikes, {alerts.height} alerts; "
          f"built {built:.1f} s, detected {detect_s:.1f} s; rows: "
          + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
    if gen.unplaced:
        print(f"   (no free slot for: {', '.join(gen.unplaced)})")
    if not clean:
        print(report.format_table())
    missed = {e for r in report.rows for e in r.missed_episode_ids}
    false_ids = {a for r in report.rows for a in r.false_alert_ids}
    by_id = {a["alert_id"]: a for a in alerts.iter_rows(named=True)}
    for it in gen.items:
        if it.labelled:
            it.found = it.episode_id not in missed
    for a in by_id.values():  # an alert counts on every episode it overlaps; on a look-alike only if that is
        landed = touching(a, gen.items, slack)  # the first thing it lands on (no episode, events before regimes)
        for it in landed:
            if it.labelled or it is landed[0]:
                it.touched_by.append(a["pattern"])
    if verbose and not clean:
        for it in gen.items:
            if it.labelled and not it.found:
                others = sorted(set(it.touched_by))
                print(f"  MISSED {it.episode_id} {it.kind} {it.market} {hm(it.start_dt)}-{hm(it.end_dt)}\n"
                      f"      params: {fmt_params(it.params)}"
                      + (f"\n      other alerts on it: {', '.join(others)}" if others else ""))
    false_rows = []
    for aid in sorted(false_ids, key=lambda x: (by_id[x]["symbol"], by_id[x]["window_start"])):
        a = by_id[aid]
        landed = touching(a, gen.items, slack)
        where = ", ".join(describe(i, a) for i in landed) or "background"
        window = f"{hm(a['window_start'])}-{hm(a['window_end'])}"
        false_rows.append({"seed": seed, "set": what, "pattern": a["pattern"], "symbol": a["symbol"],
                           "window": window, "score": a.get("score"), "landed_on": where,
                           "landed_kind": landed[0].kind if landed else "background",
                           "landed_phase": regime_phase(landed[0], a) if landed and landed[0].regime else "",
                           "landed_labelled": bool(landed and landed[0].labelled),
                           "explanation": a["explanation"], "landed_params": [i.params for i in landed[:2]]})
        if verbose:
            print(f"  FALSE [{what}] {a['pattern']} {a['symbol']} {window} on: {where}\n      {a['explanation']}")
    tag = f"s{seed}{'c' if clean else ''}-"
    pooled = (alerts.with_columns((tag + pl.col("alert_id").cast(pl.String)).alias("alert_id"),
                                  (tag + pl.col("symbol")).alias("symbol")),
              labels.with_columns((tag + pl.col("symbol")).alias("symbol")))
    return {"seed": seed, "clean": clean, "report": report, "items": gen.items, "false_rows": false_rows,
            "pooled": pooled, "market_days": len(gen.markets) * days, "alerts": alerts.height, "unplaced": gen.unplaced,
            "build_seconds": built, "detect_seconds": detect_s, "rows": rows}


# ---- summaries -----------------------------------------------------------------------------------------------

def recall_by_param(items: list[Item]) -> tuple[list[str], dict]:
    """Per pattern, recall in each third of a numeric parameter or each value of a categorical one."""
    lines, out = [], {}
    by_kind = defaultdict(list)
    for it in items:
        if it.labelled:
            by_kind[it.kind].append(it)
    for kind in PATTERNS:
        eps = by_kind.get(kind, [])
        if not eps:
            continue
        found = sum(bool(e.found) for e in eps)
        lines.append(f"{kind}: {found}/{len(eps)} found")
        out[kind] = {"episodes": len(eps), "found": found, "by_param": {}}
        for key in eps[0].params:
            values = [e.params.get(key) for e in eps]
            if len(set(map(str, values))) < 2:
                continue
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            cells = []
            if numeric and len(set(values)) > 3:
                lo, hi = (float(q) for q in np.quantile(values, [1 / 3, 2 / 3]))
                bins = [(f"<={lo:g}", lambda v, lo=lo: v <= lo),
                        (f"{lo:g}..{hi:g}", lambda v, lo=lo, hi=hi: lo < v <= hi),
                        (f">{hi:g}", lambda v, hi=hi: v > hi)]
                for name, test in bins:
                    sel = [e for e in eps if test(e.params[key])]
                    if sel:
                        cells.append((name, sum(bool(e.found) for e in sel), len(sel)))
            else:
                for value in sorted(set(map(str, values))):
                    sel = [e for e in eps if str(e.params.get(key)) == value]
                    cells.append((value, sum(bool(e.found) for e in sel), len(sel)))
            missed_vals = sorted(e.params[key] for e in eps if not e.found) if numeric else None
            lines.append(f"    {key:24s} " + " | ".join(f"{n}: {f}/{t}" for n, f, t in cells)
                         + (f"   missed at {missed_vals}" if missed_vals and len(missed_vals) <= 10 else ""))
            out[kind]["by_param"][key] = [{"bin": n, "found": f, "episodes": t} for n, f, t in cells]
    return lines, out


def false_summary(false_rows: list[dict]) -> list[str]:
    counts = defaultdict(int)
    for row in false_rows:
        kind = row["landed_kind"]
        where = f"episode of {kind}" if row["landed_labelled"] else \
            ("background" if kind == "background" else f"look-alike {kind}")
        if row["landed_phase"]:
            where += f" ({row['landed_phase']})"
        counts[(row["set"], row["pattern"], where)] += 1
    return [f"  [{s}] {p:27s} {w:40s} {n}" for (s, p, w), n in sorted(counts.items())]


def item_json(i: Item) -> dict:
    return {"episode_id": i.episode_id, "kind": i.kind, "labelled": i.labelled, "market": i.market,
            "start": i.start_dt.isoformat(), "end": i.end_dt.isoformat(), "group": i.group, "found": i.found,
            "alerts_on_it": sorted(set(i.touched_by)), "params": i.params}


def write_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, default=str)
            handle.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--depth-every", type=int, default=1, help="minutes between order-book snapshots")
    parser.add_argument("--quiet", action="store_true", help="tables only, no per-miss / per-false-alert lines")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "bench" / "eval_futures_independent" / "results.json")
    args = parser.parse_args()
    settings = EvaluationSettings()
    began = time.perf_counter()

    runs, clean_runs = [], []
    for seed in args.seeds:
        runs.append(run_set(seed, args.days, False, args.depth_every, settings, not args.quiet))
        clean_runs.append(run_set(seed + CLEAN_SEED_OFFSET, args.days, True, args.depth_every, settings,
                                  not args.quiet))
        c = clean_runs[-1]
        print(f"   clean set: {c['alerts']} alerts over {c['market_days']} market-days")

    pooled = evaluate(pl.concat([r["pooled"][0] for r in runs], how="diagonal_relaxed"),
                      pl.concat([r["pooled"][1] for r in runs]), settings)
    items = [it for r in runs for it in r["items"]]
    false_rows = [f for r in runs + clean_runs for f in r["false_rows"]]
    print(f"\n== pooled over seeds {args.seeds} ({args.days} days x 3 markets each)")
    print(pooled.format_table())

    market_days = sum(r["market_days"] for r in runs)
    clean_days = sum(r["market_days"] for r in clean_runs)
    ep_false = sum(1 for f in false_rows if f["set"] == "episodes")
    clean_false = sum(1 for f in false_rows if f["set"] == "clean")
    clean_by_pattern = defaultdict(int)
    for f in false_rows:
        if f["set"] == "clean":
            clean_by_pattern[f["pattern"]] += 1
    print(f"\n== false alerts: {ep_false} in the episode sets ({ep_false / market_days:.2f} per market-day), "
          f"{clean_false} in the clean sets ({clean_false / clean_days:.2f} per market-day over {clean_days} "
          "market-days)")
    for pattern, n in sorted(clean_by_pattern.items()):
        print(f"  clean: {pattern:27s} {n} ({n / clean_days:.2f} per market-day)")
    print("\n== false alerts by pattern and what they landed on")
    print("\n".join(false_summary(false_rows)) or "  none")

    print("\n== recall by injected parameter (pooled; numeric parameters in thirds)")
    lines, by_param = recall_by_param(items)
    print("\n".join(lines))

    print("\n== look-alikes (no label): alerts landing on each")
    all_items = items + [it for r in clean_runs for it in r["items"]]
    flagged = defaultdict(lambda: [0, 0, defaultdict(int)])
    for it in all_items:
        if not it.labelled:
            flagged[it.kind][1] += 1
            flagged[it.kind][0] += bool(it.touched_by)
            for pattern in it.touched_by:
                flagged[it.kind][2][pattern] += 1
    for kind, (hit, total, by) in sorted(flagged.items()):
        print(f"  {kind:22s} flagged {hit}/{total}"
              + (f"   alerts: {', '.join(f'{p} {n}' for p, n in sorted(by.items()))}" if by else ""))
    elapsed = time.perf_counter() - began
    print(f"\n{elapsed:.1f} s (generation {sum(r['build_seconds'] for r in runs + clean_runs):.1f} s, detection "
          f"{sum(r['detect_seconds'] for r in runs + clean_runs):.1f} s)")

    payload = {
        "seeds": args.seeds, "days": args.days, "depth_every_minutes": args.depth_every,
        "seconds": round(elapsed, 1),
        "runs": [{"seed": r["seed"], "report": r["report"].to_dict(), "alerts": r["alerts"], "rows": r["rows"],
                  "unplaced": r["unplaced"],
                  "build_seconds": r["build_seconds"], "detect_seconds": r["detect_seconds"]} for r in runs],
        "clean_runs": [{"seed": r["seed"], "alerts": r["alerts"], "market_days": r["market_days"],
                        "false_alerts_per_market_day": r["alerts"] / r["market_days"]} for r in clean_runs],
        "pooled": pooled.to_dict(),
        "false_alerts": {"episode_sets": ep_false, "episode_sets_per_market_day": ep_false / market_days,
                         "clean_sets": clean_false, "clean_sets_per_market_day": clean_false / clean_days,
                         "clean_by_pattern": dict(clean_by_pattern), "rows": false_rows},
        "recall_by_param": by_param,
        "lookalikes_flagged": {k: {"flagged": v[0], "total": v[1], "alerts_by_pattern": dict(v[2])}
                               for k, v in flagged.items()},
        "episodes": [item_json(i) for i in items],
        "clean_items": [item_json(i) for r in clean_runs for i in r["items"]],
    }
    write_atomic(args.out, payload)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
