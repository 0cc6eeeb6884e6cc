"""Futures detectors against held-out labelled perpetual-futures markets (benchmarks/futures_heldout_gen.py).

The markets are generated here from the public definitions of each abuse, independently of the detectors and
of the project's other futures generators: 4 markets (BTCUSDT, ETHUSDT, DOGEUSDT, a thin made-up ABCUSDT with
4-hourly funding; the others settle 8-hourly) x 3 days per seed, one latent process per market (GARCH-like
index with jumps, premium driven by order-flow imbalance, Binance-style premium / mark / funding, OI with daily
seasonality). Per seed: 19 labelled market-level episodes (funding_rate_manipulation, liquidation_hunting,
forced_liquidation, basis_manipulation, position_concentration, funding_rate_farming) with parameters drawn over
wide ranges, subtle to blatant, and unlabelled look-alikes in every run (news moves, multi-day trending funding,
organic OI growth, volatile hours, market-maker walls, the small cap's thin nights, spot-led sell-offs). Clean
runs (other seeds) have the look-alikes and no episode: their alerts are all false.

`futures_alerts(tables)` runs once per run (all markets together); alerts are scored with
`surveillance_pipeline.evaluation.evaluate` (same pattern, same symbol, windows overlapping with the default
slack). Printed: the table per seed and pooled, every missed episode with its parameters and the other alerts on
it, every false alert with its explanation and what it landed on (another episode, a look-alike, or the
background), recall per parameter value / third, how each look-alike kind was treated (the spot-led sell-off in
detail), and false alerts per market-day on the clean runs. Everything goes to
data/bench/eval_futures_heldout/results.json (written atomically). Asserts nothing; tunes nothing.

Usage: .venv/bin/python benchmarks/eval_futures_heldout.py [--seeds 1 2 3 4 5 6] [--days 3]
       [--clean-seeds 1001 ...] [--no-clean] [--quiet] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import polars as pl
from futures_heldout_gen import (
    EPISODES_PER_RUN,
    LOOKALIKE_KINDS,
    LOOKALIKES_PER_RUN,
    MARKETS,
    PATTERNS,
    Generated,
    Item,
    generate,
)

from surveillance_pipeline.contract import LABEL_SCHEMA
from surveillance_pipeline.evaluation import EvaluationSettings, evaluate
from surveillance_pipeline.market.futures_detectors import futures_alerts

OUT = ROOT / "data" / "bench" / "eval_futures_heldout" / "results.json"
SLACK = timedelta(minutes=EvaluationSettings().slack_minutes)
SHORT_LOOKALIKES = ("news_move", "spot_led_crash", "volatile_hours", "mm_walls", "organic_oi_growth")
LONG_LOOKALIKES = ("thin_overnight", "trending_funding")


# ---- detection -------------------------------------------------------------------------------------------

def alert_frame(result) -> pl.DataFrame:
    """The detectors' output as an alert frame with the columns evaluation reads."""
    frame = result if isinstance(result, pl.DataFrame) else getattr(result, "alerts", result)
    if not isinstance(frame, pl.DataFrame):
        frame = pl.DataFrame(list(frame))
    if frame.height == 0 and "pattern" not in frame.columns:
        frame = pl.DataFrame(schema={"alert_id": pl.String, "pattern": pl.String, "symbol": pl.String,
                                     "user_ids": pl.String, "window_start": pl.Datetime("us", "UTC"),
                                     "window_end": pl.Datetime("us", "UTC"), "score": pl.Float64,
                                     "risk_level": pl.String, "explanation": pl.String})
    if "alert_id" not in frame.columns:
        frame = frame.with_columns(pl.int_range(1, pl.len() + 1).cast(pl.String).alias("alert_id"))
    if "user_ids" not in frame.columns:
        frame = frame.with_columns(pl.lit("").alias("user_ids"))
    for column in ("score", "risk_level", "explanation"):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None).alias(column))
    return frame.with_columns(pl.col("alert_id").cast(pl.String), pl.col("user_ids").cast(pl.String).fill_null(""))


def hm(ts) -> str:
    return ts.strftime("%d %H:%M")


def fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def landed(alert: dict, items: list[Item]) -> tuple[list[tuple[Item, str]], str, Item | None]:
    """Items an alert overlaps (same market, windows within the slack), a one-line verdict and the item it is
    put on: an episode first, then a short look-alike, then a long regime (trending funding, thin nights),
    else the background (None)."""
    a0, a1 = alert["window_start"], alert["window_end"]
    hits = []
    for it in items:
        if it.market != alert["symbol"]:
            continue
        if a0 <= it.end + SLACK and a1 >= it.start - SLACK:
            hits.append((it, "on"))
        elif it.effect_end and a0 <= it.effect_end + SLACK and a1 >= it.start - SLACK:
            hits.append((it, "aftermath of"))
    for group in ("episode", SHORT_LOOKALIKES, LONG_LOOKALIKES):
        for it, how in hits:
            if (group == "episode" and it.labelled) or (group != "episode" and it.kind in group):
                what = f"episode {it.episode_id} ({it.kind})" if it.labelled else f"LOOK-ALIKE {it.kind}"
                return hits, f"{how} {what}" if how != "on" else what, it
    return hits, "background", None


def run_one(seed: int, days: int, clean: bool, verbose: bool) -> dict:
    tick = time.perf_counter()
    g: Generated = generate(seed, days, clean=clean)
    built = time.perf_counter() - tick
    tick = time.perf_counter()
    alerts = alert_frame(futures_alerts(g.tables))
    detected = time.perf_counter() - tick
    labels = g.labels.cast(LABEL_SCHEMA)
    report = evaluate(alerts, labels)
    kind = "clean" if clean else "episodes"
    n_look = sum(not it.labelled for it in g.items)
    print(f"\n== seed {seed} ({kind}): {len(g.markets)} markets x {days} days from {g.start:%Y-%m-%d}, "
          f"{labels.height} episodes, {n_look} look-alike spans, {alerts.height} alerts; "
          f"built {built:.1f} s, detected {detected:.1f} s"
          + (f"; could not place: {', '.join(g.unplaced)}" if g.unplaced else ""))
    print(report.format_table())
    missed = {e for r in report.rows for e in r.missed_episode_ids}
    false_ids = {a for r in report.rows for a in r.false_alert_ids}
    rows = list(alerts.iter_rows(named=True))
    for it in g.items:
        if it.labelled:
            it.found = it.episode_id not in missed
    for a in rows:
        # episodes list every alert on them; a look-alike only the false alerts put on it
        hits, _, primary = landed(a, g.items)
        for it, how in hits:
            if it.labelled or (a["alert_id"] in false_ids and it is primary):
                it.touched_by.append(f"{a['pattern']}" + ("" if how == "on" else " (aftermath)"))
    if verbose:
        for it in g.items:
            if it.labelled and not it.found:
                others = sorted(set(it.touched_by))
                print(f"  MISSED {it.episode_id} {it.kind} {it.market} {hm(it.start)}-{hm(it.end)}\n"
                      f"      params: {fmt_params(it.params)}"
                      + (f"\n      other alerts on it: {', '.join(others)}" if others else ""))
    false_rows = []
    for a in rows:
        if a["alert_id"] not in false_ids:
            continue
        hits, where, _ = landed(a, g.items)
        row = {"seed": seed, "run": kind, "alert_id": a["alert_id"], "pattern": a["pattern"], "market": a["symbol"],
               "window": f"{hm(a['window_start'])}-{hm(a['window_end'])}", "score": a["score"],
               "risk_level": a["risk_level"], "explanation": a["explanation"], "landed_on": where,
               "all_overlapping": [f"{how} {it.episode_id}" for it, how in hits],
               "landed_params": [it.params for it, _ in hits if it.kind not in LONG_LOOKALIKES]}
        false_rows.append(row)
        if verbose:
            print(f"  FALSE {a['pattern']} {a['symbol']} {row['window']} score={a['score']} {a['risk_level']} "
                  f"on: {where}\n      {a['explanation']}")
    tag = f"s{seed}-"
    pooled = (alerts.with_columns((tag + pl.col("alert_id")).alias("alert_id"), (tag + pl.col("symbol")).alias("symbol")),
              labels.with_columns((tag + pl.col("symbol")).alias("symbol")))
    return {"seed": seed, "clean": clean, "report": report, "items": g.items, "false_rows": false_rows,
            "pooled": pooled, "build_seconds": built, "detect_seconds": detected, "markets": g.markets,
            "days": days, "alerts": alerts.height, "unplaced": g.unplaced,
            "alert_rows": [{k: (str(v) if k in ("window_start", "window_end") else v) for k, v in a.items()
                            if k in ("alert_id", "pattern", "symbol", "window_start", "window_end", "score",
                                     "risk_level", "explanation")} for a in rows]}


# ---- summaries -------------------------------------------------------------------------------------------

def recall_by_param(items: list[Item]) -> list[str]:
    """Per pattern, recall per value of a categorical parameter or per third of a numeric one."""
    lines = []
    by_kind = defaultdict(list)
    for it in items:
        if it.labelled:
            by_kind[it.kind].append(it)
    for kind in PATTERNS:
        eps = by_kind.get(kind, [])
        if not eps:
            continue
        lines.append(f"{kind}: {sum(bool(e.found) for e in eps)}/{len(eps)} found")
        keys = list(dict.fromkeys(k for e in eps for k in e.params))
        for key in keys:
            values = [e.params.get(key) for e in eps]
            if len(set(map(str, values))) < 2:
                continue
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric and len(set(values)) > 3:
                lo, hi = (float(q) for q in np.quantile(values, [1 / 3, 2 / 3]))
                bins = [(f"<={lo:.3g}", lambda v, lo=lo: v <= lo), (f"{lo:.3g}..{hi:.3g}", lambda v, lo=lo, hi=hi: lo < v <= hi),
                        (f">{hi:.3g}", lambda v, hi=hi: v > hi)]
                cells = []
                for name, test in bins:
                    sel = [e for e in eps if test(e.params[key])]
                    if sel:
                        cells.append(f"{name}: {sum(bool(e.found) for e in sel)}/{len(sel)}")
                missed = sorted(e.params[key] for e in eps if not e.found)
                lines.append(f"    {key:28s} " + " | ".join(cells)
                             + (f"   missed at {missed}" if missed and len(missed) <= 8 else ""))
            elif len(set(map(str, values))) <= 8:
                cells = []
                for value in sorted(set(map(str, values))):
                    sel = [e for e in eps if str(e.params.get(key)) == value]
                    cells.append(f"{value}: {sum(bool(e.found) for e in sel)}/{len(sel)}")
                lines.append(f"    {key:28s} " + " | ".join(cells))
    return lines


def lookalike_summary(runs: list[dict]) -> tuple[list[str], dict]:
    lines, out = [], {}
    for kind in LOOKALIKE_KINDS:
        sel = [(r, it) for r in runs for it in r["items"] if it.kind == kind and not it.labelled]
        if not sel:
            continue
        flagged = [(r, it) for r, it in sel if it.touched_by]
        patterns = defaultdict(int)
        for _, it in flagged:
            for p in set(it.touched_by):
                patterns[p] += 1
        out[kind] = {"instances": len(sel), "flagged": len(flagged), "by_pattern": dict(patterns)}
        lines.append(f"  {kind:18s} flagged {len(flagged)}/{len(sel)}"
                     + (f"   by: {', '.join(f'{p} x{n}' for p, n in sorted(patterns.items()))}" if patterns else ""))
    return lines, out


def false_summary(false_rows: list[dict]) -> list[str]:
    counts = defaultdict(int)
    for row in false_rows:
        where = row["landed_on"]
        if where.startswith(("episode", "aftermath of episode")):
            where = ("aftermath of " if where.startswith("aftermath") else "") + "episode of " + where.split("(")[-1].rstrip(")")
        counts[(row["pattern"], where)] += 1
    return [f"  {p:28s} {w:50s} {n}" for (p, w), n in sorted(counts.items())]


def per_market_day(runs: list[dict]) -> tuple[list[str], dict]:
    """False alerts per market-day on the clean runs: overall, per market, per pattern, and background only."""
    if not runs:
        return ["  (no clean runs)"], {}
    market_days = sum(len(r["markets"]) * r["days"] for r in runs)
    rows = [f for r in runs for f in r["false_rows"]]
    background = [f for f in rows if f["landed_on"] == "background"]
    by_market, by_pattern, bg_market = defaultdict(int), defaultdict(int), defaultdict(int)
    for f in rows:
        by_market[f["market"]] += 1
        by_pattern[f["pattern"]] += 1
    for f in background:
        bg_market[f["market"]] += 1
    days_per_market = sum(r["days"] for r in runs)
    lines = [(f"  {len(runs)} clean runs, {market_days} market-days: {len(rows)} alerts = "
             f"{len(rows) / market_days:.3f} per market-day ({len(background)} on background only = "
             f"{len(background) / market_days:.3f} per market-day; the rest on look-alikes)")]
    for m in [s.name for s in MARKETS]:
        lines.append(f"    {m:10s} {by_market[m] / days_per_market:.3f} per day "
                     f"({by_market[m]} alerts, {bg_market[m]} on background)")
    for p, n in sorted(by_pattern.items()):
        lines.append(f"    {p:28s} {n / market_days:.3f} per market-day ({n})")
    return lines, {"market_days": market_days, "false_alerts": len(rows), "per_market_day": len(rows) / market_days,
                   "background_alerts": len(background), "background_per_market_day": len(background) / market_days,
                   "per_market_per_day": {m: by_market[m] / days_per_market for m in [s.name for s in MARKETS]},
                   "per_pattern_per_market_day": {p: n / market_days for p, n in by_pattern.items()}}


def item_json(it: Item) -> dict:
    return {"episode_id": it.episode_id, "kind": it.kind, "labelled": it.labelled, "market": it.market,
            "start": it.start.isoformat(), "end": it.end.isoformat(),
            "effect_end": it.effect_end.isoformat() if it.effect_end else None, "found": it.found,
            "alerts_on_it": sorted(set(it.touched_by)), "params": it.params}


def write_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--clean-seeds", type=int, nargs="*", default=None,
                        help="seeds of the clean runs (default: each episode seed + 1000)")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean runs")
    parser.add_argument("--quiet", action="store_true", help="tables and summaries only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    clean_seeds = [] if args.no_clean else (args.clean_seeds if args.clean_seeds is not None
                                            else [s + 1000 for s in args.seeds])
    began = time.perf_counter()
    print("#### runs with labelled episodes and look-alikes")
    runs = [run_one(seed, args.days, False, not args.quiet) for seed in args.seeds]
    print("\n#### clean runs (look-alikes, no episode)")
    clean_runs = [run_one(seed, args.days, True, not args.quiet) for seed in clean_seeds]

    pooled = evaluate(pl.concat([r["pooled"][0] for r in runs], how="diagonal_relaxed"),
                      pl.concat([r["pooled"][1] for r in runs]))
    print(f"\n== pooled over episode seeds {args.seeds} ({len(runs) * len(MARKETS) * args.days} market-days)")
    print(pooled.format_table())
    items = [it for r in runs for it in r["items"]]

    print("\n== missed episodes (pooled)")
    missed = [it for it in items if it.labelled and not it.found]
    for it in missed:
        others = sorted(set(it.touched_by))
        print(f"  {it.episode_id} {it.kind} {it.market} {hm(it.start)}-{hm(it.end)}: {fmt_params(it.params)}"
              + (f"\n      other alerts on it: {', '.join(others)}" if others else ""))
    if not missed:
        print("  none")

    print("\n== recall by parameter (pooled; numeric parameters in thirds; strength_* = size in BTC units)")
    print("\n".join(recall_by_param(items)))

    all_runs = runs + clean_runs
    print("\n== look-alikes (no label): how often a false alert was put on each kind (episode and clean runs; an"
          " alert overlapping several items goes to an episode, else a short look-alike, else a long regime)")
    look_lines, look_json = lookalike_summary(all_runs)
    print("\n".join(look_lines))

    print("\n== spot-led sell-offs (index falls first, the perp follows and liquidates longs; a real market event,"
          " not labelled)")
    crashes = [(r["seed"], it) for r in all_runs for it in r["items"] if it.kind == "spot_led_crash"]
    crash_json = []
    for seed, it in crashes:
        hits = sorted(set(it.touched_by))
        print(f"  {'FLAGGED' if hits else 'clean  '} seed {seed} {it.market} {hm(it.start)}: {fmt_params(it.params)}"
              + (f"\n      as: {', '.join(hits)}" if hits else ""))
        crash_json.append({"seed": seed, **item_json(it)})
    flagged = [c for c in crash_json if c["alerts_on_it"]]
    as_pattern = defaultdict(int)
    for c in flagged:
        for p in c["alerts_on_it"]:
            as_pattern[p] += 1
    print(f"  -> flagged {len(flagged)}/{len(crash_json)}"
          + (f"; as {', '.join(f'{p} x{n}' for p, n in sorted(as_pattern.items()))}" if as_pattern else ""))

    false_rows = [f for r in runs for f in r["false_rows"]]
    clean_false = [f for r in clean_runs for f in r["false_rows"]]
    print("\n== false alerts in the episode runs, by pattern and what they landed on")
    print("\n".join(false_summary(false_rows)) or "  none")
    print("\n== false alerts in the clean runs, by pattern and what they landed on")
    print("\n".join(false_summary(clean_false)) or "  none")
    print("\n== false alerts per market-day, clean runs")
    mday_lines, mday_json = per_market_day(clean_runs)
    print("\n".join(mday_lines))
    if runs:
        ep_mdays = sum(len(r["markets"]) * r["days"] for r in runs)
        print(f"  (episode runs: {len(false_rows)} false alerts over {ep_mdays} market-days = "
              f"{len(false_rows) / ep_mdays:.3f} per market-day)")

    elapsed = time.perf_counter() - began
    detect_s = sum(r["detect_seconds"] for r in all_runs)
    build_s = sum(r["build_seconds"] for r in all_runs)
    print(f"\n{elapsed:.1f} s (generation {build_s:.1f} s, detectors {detect_s:.1f} s)")
    clean_pooled = (evaluate(pl.concat([r["pooled"][0] for r in clean_runs], how="diagonal_relaxed"),
                             pl.concat([r["pooled"][1] for r in clean_runs])) if clean_runs else None)
    write_atomic(args.out, {
        "seeds": args.seeds, "clean_seeds": clean_seeds, "days": args.days,
        "markets": [{"name": m.name, "funding_hours": m.funding_hours, "move_scale": m.move_scale,
                     "dev_scale": m.dev_scale} for m in MARKETS],
        "episodes_per_run": EPISODES_PER_RUN, "lookalikes_per_run": LOOKALIKES_PER_RUN,
        "runs": [{"seed": r["seed"], "clean": r["clean"], "report": r["report"].to_dict(), "alerts": r["alerts"],
                  "build_seconds": r["build_seconds"], "detect_seconds": r["detect_seconds"],
                  "unplaced": r["unplaced"]} for r in all_runs],
        "pooled": pooled.to_dict(), "clean_pooled": clean_pooled.to_dict() if clean_pooled else None,
        "episodes": [item_json(it) for it in items if it.labelled],
        "lookalikes": [{"seed": r["seed"], "clean_run": r["clean"], **item_json(it)} for r in all_runs
                       for it in r["items"] if not it.labelled],
        "lookalike_summary": look_json, "spot_led_crashes": crash_json,
        "false_alerts": false_rows, "clean_false_alerts": clean_false, "clean_false_per_market_day": mday_json,
        "alerts": {f"{'clean' if r['clean'] else 'episodes'}-s{r['seed']}": r["alert_rows"] for r in all_runs},
        "seconds": {"total": elapsed, "generation": build_s, "detectors": detect_s},
    })
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
