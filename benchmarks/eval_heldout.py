"""Trade-level rule detectors against held-out labelled spot-market days (benchmarks/heldout_gen.py).

The days are generated from the public definitions of each abuse (CFTC/SEC/FINRA rules and enforcement
descriptions, ESMA MAR Annex I/II indicators, the crypto pump-and-dump literature), independently of the
detectors, their configuration and the project's scenario generators. Per seed: a history-only warm-up day,
then `--days` labelled days on 4-5 symbols (2 majors + 2 small caps, sometimes one more) with 14 episodes a day
(2 of each pattern; pumps on the small caps) drawn over wide parameter ranges (subtle to blatant), and in every
day the background (retail, market makers cancelling > 90 % of their quotes, HFT makers, arbitrageurs, execution
algos, grid bots, busy hours) and unlabelled look-alikes (a news rally with thousands of buyers and no collapse,
large orders cancelled after the market moved away, a pair of accounts trading a lot with each other while one
builds a position, an extra busy hour). Clean days (their own seed) have the background and look-alikes only.

The detector (`RuleBasedDetector()`, default settings) runs day by day (UTC) with the previous 1-2 days' trades as
history; alerts are scored with `surveillance_pipeline.evaluation.evaluate` (family, symbol, overlapping windows
with the default slack, a shared account for account-level episodes). Printed: the table per seed and pooled,
every missed episode with its parameters, every false alert with its explanation and what it landed on (another
pattern's episode, a look-alike, or the background, with the roles of its accounts), recall per parameter value
or third, how each look-alike kind was treated, and false alerts per 100k trades on the clean days. Everything
goes to data/bench/eval_heldout/results.json (written atomically). Asserts nothing; tunes nothing.

Generator changes after the first detector run (bug fixes only, no parameter range changed): abusers were drawn
only from very light or very heavy retail accounts (the moderate ones were all reserved for excessive trading);
market makers' quotes went stale between requotes so ~21 % of their fills printed through the touch; spoof/layer
orders and other unfilled resting orders could be crossed by the random walk without executing, and genuine
orders filled off-market; maker orders could be placed at prices that were marketable at placement; news-rally
buyers arriving after midnight were piled onto 23:59:58. `--scale`/`--msg-scale` were sized from a timing-only run.

Usage: .venv/bin/python benchmarks/eval_heldout.py [--seeds 1 2 3 4 5 6] [--days 2] [--clean-days 2]
       [--clean-seed 1001] [--scale 3] [--msg-scale 1.5] [--quiet] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import polars as pl
from heldout_gen import LOOKALIKE_KINDS, PATTERNS, Item, generate

from surveillance_pipeline.contract import LABEL_SCHEMA, TRADE_SCHEMA
from surveillance_pipeline.detectors.base import DetectionInputs
from surveillance_pipeline.detectors.rules import RuleBasedDetector
from surveillance_pipeline.evaluation import EvaluationSettings, evaluate

OUT = ROOT / "data" / "bench" / "eval_heldout" / "results.json"
SETTINGS = EvaluationSettings()
SLACK = timedelta(minutes=SETTINGS.slack_minutes)
FAMILY = SETTINGS.family_of()
ALERT_COLUMNS = ("alert_id", "pattern", "risk_level", "score", "symbol", "user_ids", "window_start", "window_end",
                 "explanation")
ACCOUNT_LOOKALIKES = ("large_order_cancelled", "frequent_pair")


def family(pattern: str) -> str:
    return FAMILY.get(pattern, pattern)


def hm(ts) -> str:
    return ts.strftime("%m-%d %H:%M:%S")


def fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if k != "symbol")


def users(alert: dict) -> set[str]:
    return {u for u in (alert.get("user_ids") or "").split(";") if u}


def overlaps(alert: dict, it: Item) -> bool:
    return alert["symbol"] == it.symbol and alert["window_start"] <= it.end + SLACK and \
        alert["window_end"] >= it.start - SLACK


def matches(alert: dict, it: Item) -> bool:
    """The evaluation's matching rule, per pair (to list which alerts found which episode)."""
    if not it.labelled or family(alert["pattern"]) != family(it.kind) or not overlaps(alert, it):
        return False
    return it.kind == "pump_and_dump" or bool(users(alert) & set(it.accounts))


class Run:
    """One seed's generated days, detector alerts and the bookkeeping for the report."""

    def __init__(self, seed: int, days: int, clean: bool, scale: float, msg_scale: float):
        tick = time.perf_counter()
        self.world, self.days = generate(seed, days, clean=clean, scale=scale, msg_scale=msg_scale)
        self.build_s = time.perf_counter() - tick
        self.seed, self.clean = seed, clean
        self.detect_s = 0.0
        frames = []
        detector = RuleBasedDetector()
        for i, day in enumerate(self.days):
            if day.history_only:
                continue
            history = pl.concat([d.trades for d in self.days[max(0, i - 2):i]]) if i else pl.DataFrame(schema=TRADE_SCHEMA)
            tick = time.perf_counter()
            run = detector.run(DetectionInputs(trades=day.trades, orders=day.orders, history=history, day=day.day))
            self.detect_s += time.perf_counter() - tick
            alerts = run.alerts.select([c for c in ALERT_COLUMNS if c in run.alerts.columns])
            frames.append(alerts.with_columns(pl.format("s{}-{}-{}", pl.lit(seed), pl.lit(day.day.strftime("%m%d")),
                                                        pl.col("alert_id").cast(pl.String)).alias("alert_id"),
                                              pl.col("user_ids").cast(pl.String).fill_null("")))
        self.alerts = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(
            schema={"alert_id": pl.String, "pattern": pl.String, "symbol": pl.String, "user_ids": pl.String,
                    "window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC")})
        scored = [d for d in self.days if not d.history_only]
        self.labels = pl.concat([d.labels for d in scored]).cast(LABEL_SCHEMA)
        self.trade_count = sum(d.trades.height for d in scored)
        self.order_count = sum(d.orders.height for d in scored)
        self.items: list[Item] = [it for d in scored for it in d.items]
        self.report = evaluate(self.alerts, self.labels, trade_count=self.trade_count)
        missed = {e for r in self.report.rows for e in r.missed_episode_ids}
        self.false_ids = {a for r in self.report.rows for a in r.false_alert_ids}
        self.rows = list(self.alerts.iter_rows(named=True))
        self.abuser_of: dict[str, list[Item]] = defaultdict(list)
        for it in self.items:
            if it.labelled:
                it.found = it.episode_id not in missed
                for acct in it.accounts:
                    self.abuser_of[acct].append(it)
        for a in self.rows:
            for it in self.items:
                if it.labelled and matches(a, it):
                    it.alerts_on_it.append(a["pattern"])
        self.false_rows = [self.describe_false(a) for a in self.rows if a["alert_id"] in self.false_ids]
        self.unplaced = [u for d in scored for u in getattr(d, "unplaced", [])]

    def roles(self, alert: dict) -> list[str]:
        out = []
        for u in sorted(users(alert)):
            role = self.world.role_of(u)
            eps = self.abuser_of.get(u)
            if eps:
                role += " [abuser in " + ", ".join(f"{e.kind} {e.symbol} {hm(e.start)}" for e in eps) + "]"
            out.append(f"{u}={role}")
        return out

    def landed(self, alert: dict) -> tuple[str, Item | None]:
        """What a false alert sits on: an episode (another family, or its own family without a shared account),
        then an account-level look-alike sharing an account, then a market-level look-alike overlapping it,
        else the background."""
        hits = [it for it in self.items if overlaps(alert, it)]
        mine = users(alert)
        for it in hits:
            if it.labelled and (not mine or not it.accounts or mine & set(it.accounts) or it.kind == "pump_and_dump"):
                how = "same family, no shared account" if family(it.kind) == family(alert["pattern"]) else "other pattern"
                return f"episode {it.kind} ({how})", it
        for it in hits:
            if not it.labelled and it.kind in ACCOUNT_LOOKALIKES and mine & set(it.accounts):
                return f"LOOK-ALIKE {it.kind}", it
        for it in hits:
            if not it.labelled and not it.accounts:
                return f"LOOK-ALIKE {it.kind}", it
        for it in hits:
            if it.labelled:
                return f"episode {it.kind} window (no shared account)", it
        return "background", None

    def describe_false(self, a: dict) -> dict:
        where, it = self.landed(a)
        if it is not None and not it.labelled:
            it.alerts_on_it.append(a["pattern"])
        roles = self.roles(a)
        if where == "background":
            kinds = sorted({r.split("=", 1)[1].split(" [")[0] for r in roles})
            where = "background" + (f" ({', '.join(kinds)})" if kinds else " (market level)")
        return {"seed": self.seed, "clean": self.clean, "alert_id": a["alert_id"], "pattern": a["pattern"],
                "symbol": a["symbol"], "window": f"{hm(a['window_start'])} - {hm(a['window_end'])}",
                "score": a.get("score"), "risk_level": a.get("risk_level"), "explanation": a.get("explanation"),
                "landed_on": where, "landed_item": it.episode_id if it else None,
                "landed_params": it.params if it else None, "accounts": roles}

    def print(self, verbose: bool) -> None:
        kind = "clean" if self.clean else "episodes"
        print(f"\n== seed {self.seed} ({kind}): {', '.join(s.symbol for s in self.world.specs)}; "
              f"{len([d for d in self.days if not d.history_only])} scored day(s) from "
              f"{self.days[1].day if len(self.days) > 1 else '-'}; {self.trade_count} trades, {self.order_count} order "
              f"events, {self.labels.height} episodes, {sum(not it.labelled for it in self.items)} look-alikes, "
              f"{self.alerts.height} alerts; fill events: {'yes' if self.world.fill_events else 'no (trades only)'}; "
              f"built {self.build_s:.1f} s, detected {self.detect_s:.1f} s"
              + (f"; could not place: {', '.join(self.unplaced)}" if self.unplaced else ""))
        print(self.report.format_table())
        if not verbose:
            return
        for it in self.items:
            if it.labelled and not it.found:
                others = sorted(set(it.alerts_on_it))
                print(f"  MISSED {it.episode_id} {it.symbol} {hm(it.start)}-{hm(it.end)}\n"
                      f"      {fmt_params(it.params)}"
                      + (f"\n      other-family alerts on it: {', '.join(others)}" if others else ""))
        for f in self.false_rows:
            print(f"  FALSE {f['pattern']} {f['symbol']} {f['window']} score={f['score']} {f['risk_level']} "
                  f"-> {f['landed_on']}{' ' + f['landed_item'] if f['landed_item'] else ''}\n"
                  f"      {f['explanation']}\n      accounts: {'; '.join(f['accounts']) or '-'}")

    def pooled_frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        tag = f"s{self.seed}:"
        return (self.alerts.with_columns((tag + pl.col("symbol")).alias("symbol")),
                self.labels.with_columns((tag + pl.col("symbol")).alias("symbol")))


# ---- summaries -------------------------------------------------------------------------------------------

def recall_by_param(items: list[Item]) -> tuple[list[str], dict]:
    """Per pattern: recall per value of a categorical parameter, per third of a numeric one."""
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
        keys = list(dict.fromkeys(k for e in eps for k in e.params))
        for key in keys:
            values = [e.params.get(key) for e in eps]
            if any(v is None for v in values) or len(set(map(str, values))) < 2:
                continue
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            cells, js = [], {}
            if numeric and len(set(values)) > 3:
                lo, hi = (float(q) for q in np.quantile(values, [1 / 3, 2 / 3]))
                bins = [(f"<={lo:.3g}", lambda v, lo=lo: v <= lo),
                        (f"{lo:.3g}..{hi:.3g}", lambda v, lo=lo, hi=hi: lo < v <= hi),
                        (f">{hi:.3g}", lambda v, hi=hi: v > hi)]
                for name, test in bins:
                    sel = [e for e in eps if test(e.params[key])]
                    if sel:
                        k = sum(bool(e.found) for e in sel)
                        cells.append(f"{name}: {k}/{len(sel)}")
                        js[name] = [k, len(sel)]
            elif len(set(map(str, values))) <= 8:
                for value in sorted(set(map(str, values))):
                    sel = [e for e in eps if str(e.params.get(key)) == value]
                    k = sum(bool(e.found) for e in sel)
                    cells.append(f"{value}: {k}/{len(sel)}")
                    js[value] = [k, len(sel)]
            else:
                continue
            lines.append(f"    {key:32s} " + " | ".join(cells))
            out[kind]["by_param"][key] = js
    return lines, out


def lookalike_summary(runs: list[Run]) -> tuple[list[str], dict]:
    lines, out = [], {}
    for kind in LOOKALIKE_KINDS:
        sel = [it for r in runs for it in r.items if it.kind == kind and not it.labelled]
        if not sel:
            continue
        flagged = [it for it in sel if it.alerts_on_it]
        by = Counter(p for it in flagged for p in it.alerts_on_it)
        out[kind] = {"instances": len(sel), "flagged": len(flagged), "alerts_by_pattern": dict(by)}
        lines.append(f"  {kind:24s} flagged {len(flagged)}/{len(sel)}"
                     + (f"   alerts: {', '.join(f'{p} x{n}' for p, n in sorted(by.items()))}" if by else ""))
    bg = Counter()
    for r in runs:
        for f in r.false_rows:
            if f["landed_on"].startswith("background"):
                kinds = f["landed_on"][len("background"):].strip(" ()") or "market level"
                for k in kinds.split(", "):
                    bg[(f["pattern"], k)] += 1
    out["background_roles"] = {f"{p} / {k}": n for (p, k), n in sorted(bg.items())}
    if bg:
        lines.append("  background false alerts by pattern / role of an account on them:")
        lines += [f"    {p:22s} {k:22s} {n}" for (p, k), n in sorted(bg.items())]
    return lines, out


def false_summary(rows: list[dict]) -> list[str]:
    counts = Counter((r["pattern"], r["landed_on"]) for r in rows)
    return [f"  {p:22s} {w:70s} {n}" for (p, w), n in sorted(counts.items())]


def write_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def item_json(it: Item, seed: int) -> dict:
    return {"seed": seed, "episode_id": it.episode_id, "kind": it.kind, "labelled": it.labelled, "symbol": it.symbol,
            "accounts": it.accounts, "start": it.start.isoformat(), "end": it.end.isoformat(), "found": it.found,
            "alerts_on_it": sorted(set(it.alerts_on_it)), "params": it.params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--days", type=int, default=2, help="labelled days per seed (after a history-only day)")
    parser.add_argument("--clean-days", type=int, default=2, help="clean days (no episodes); 0 to skip")
    parser.add_argument("--clean-seed", type=int, default=1001)
    parser.add_argument("--scale", type=float, default=3.0, help="background activity multiplier")
    parser.add_argument("--msg-scale", type=float, default=1.5, help="market makers' base requote-rate multiplier")
    parser.add_argument("--quiet", action="store_true", help="tables and summaries only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    began = time.perf_counter()
    print(f"#### labelled days: seeds {args.seeds} x {args.days} day(s), scale {args.scale}, msg scale {args.msg_scale}")
    runs = []
    for seed in args.seeds:
        run = Run(seed, args.days, False, args.scale, args.msg_scale)
        run.print(not args.quiet)
        runs.append(run)
    clean = None
    if args.clean_days:
        print(f"\n#### clean days (seed {args.clean_seed}: background and look-alikes, no episode)")
        clean = Run(args.clean_seed, args.clean_days, True, args.scale, args.msg_scale)
        clean.print(not args.quiet)

    frames = [r.pooled_frames() for r in runs]
    pooled = evaluate(pl.concat([f[0] for f in frames], how="diagonal_relaxed"), pl.concat([f[1] for f in frames]),
                      trade_count=sum(r.trade_count for r in runs))
    n_days = sum(1 for r in runs for d in r.days if not d.history_only)
    print(f"\n== pooled over seeds {args.seeds} ({n_days} labelled days, {sum(r.trade_count for r in runs)} trades)")
    print(pooled.format_table())

    items = [it for r in runs for it in r.items]
    print("\n== missed episodes (pooled)")
    missed = [(r.seed, it) for r in runs for it in r.items if it.labelled and not it.found]
    for seed, it in missed:
        others = sorted(set(it.alerts_on_it))
        print(f"  s{seed} {it.kind:18s} {it.symbol:9s} {hm(it.start)}-{hm(it.end)} accounts={';'.join(it.accounts) or '-'}\n"
              f"      {fmt_params(it.params)}"
              + (f"\n      other-family alerts on it: {', '.join(others)}" if others else ""))
    if not missed:
        print("  none")

    print("\n== recall by parameter (pooled; numeric parameters in thirds of their drawn values)")
    param_lines, param_json = recall_by_param(items)
    print("\n".join(param_lines))

    all_runs = runs + ([clean] if clean else [])
    print("\n== look-alikes (no label): instances with a false alert put on them (labelled and clean days)")
    look_lines, look_json = lookalike_summary(all_runs)
    print("\n".join(look_lines))

    false_rows = [f for r in runs for f in r.false_rows]
    print("\n== false alerts on labelled days, by pattern and what they landed on")
    print("\n".join(false_summary(false_rows)) or "  none")
    clean_json = None
    if clean:
        print("\n== clean days: false alerts by pattern and what they landed on")
        print("\n".join(false_summary(clean.false_rows)) or "  none")
        per100k = clean.report.false_alerts_per_100k_trades
        bg = [f for f in clean.false_rows if f["landed_on"].startswith("background")]
        by_pattern = Counter(f["pattern"] for f in clean.false_rows)
        print(f"  {len(clean.false_rows)} false alerts over {clean.trade_count} trades = "
              f"{per100k if per100k is not None else 0:.2f} per 100k trades "
              f"({len(bg)} on the background = {len(bg) * 1e5 / max(clean.trade_count, 1):.2f} per 100k; "
              f"the rest on look-alikes)")
        for p, n in sorted(by_pattern.items()):
            print(f"    {p:22s} {n:4d}  = {n * 1e5 / max(clean.trade_count, 1):.2f} per 100k trades")
        clean_json = {"seed": clean.seed, "days": args.clean_days, "trades": clean.trade_count,
                      "false_alerts": len(clean.false_rows), "per_100k_trades": per100k,
                      "background_false_alerts": len(bg),
                      "per_pattern_per_100k": {p: n * 1e5 / max(clean.trade_count, 1) for p, n in by_pattern.items()},
                      "report": clean.report.to_dict()}
    ep_100k = len(false_rows) * 1e5 / max(sum(r.trade_count for r in runs), 1)
    print(f"  (labelled days: {len(false_rows)} false alerts = {ep_100k:.2f} per 100k trades)")

    elapsed = time.perf_counter() - began
    build_s = sum(r.build_s for r in all_runs)
    detect_s = sum(r.detect_s for r in all_runs)
    print(f"\n{elapsed:.1f} s (generation {build_s:.1f} s, detectors {detect_s:.1f} s)")
    write_atomic(args.out, {
        "seeds": args.seeds, "days": args.days, "clean_seed": args.clean_seed, "clean_days": args.clean_days,
        "scale": args.scale, "msg_scale": args.msg_scale,
        "runs": [{"seed": r.seed, "clean": r.clean, "symbols": [s.symbol for s in r.world.specs],
                  "fill_events": r.world.fill_events, "trades": r.trade_count, "order_events": r.order_count,
                  "alerts": r.alerts.height, "report": r.report.to_dict(), "build_seconds": r.build_s,
                  "detect_seconds": r.detect_s, "unplaced": r.unplaced} for r in all_runs],
        "pooled": pooled.to_dict(), "clean": clean_json,
        "episodes": [item_json(it, r.seed) for r in runs for it in r.items if it.labelled],
        "lookalikes": [item_json(it, r.seed) for r in all_runs for it in r.items if not it.labelled],
        "recall_by_param": param_json, "lookalike_summary": look_json,
        "false_alerts": false_rows, "clean_false_alerts": clean.false_rows if clean else [],
        "seconds": {"total": elapsed, "generation": build_s, "detectors": detect_s},
    })
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
