"""Wall time, CPU time and peak RSS of each rule detector alone on the big bench day (after bench_e2e.py's
validation). Each detector runs in its own process. Prints figures; asserts nothing.
Usage: python benchmarks/profile_detectors.py [--trades 10000000] [--orders 30000000] [--only NAME]"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_features as bf  # noqa: E402


def run_one(name: str, out: Path) -> dict:
    import polars as pl

    from surveillance_pipeline.config import load_settings
    from surveillance_pipeline.detectors.base import DetectionInputs
    from surveillance_pipeline.detectors.settings import RULES

    settings = load_settings(environ={})
    trades = pl.read_parquet(out / "validated_trades" / "*.parquet")
    orders = pl.read_parquet(out / "validated_orders" / "*.parquet")
    loaded = bf.peak_rss_mb()
    began, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    findings = RULES[name](DetectionInputs(trades=trades, orders=orders, history=trades.clear(), day=bf.DAY),
                           getattr(settings.detectors, name))
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": time.perf_counter() - began, "cpu": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
            "peak_rss_mb": bf.peak_rss_mb(), "loaded_mb": loaded, "findings": findings.height}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, default=30_000_000)
    parser.add_argument("--only")
    parser.add_argument("--child")
    args = parser.parse_args()
    out = ROOT / "data" / "bench" / f"day-{args.trades}-{args.orders}" / "pipeline"
    if args.child:
        print(json.dumps(run_one(args.child, out)))
        return
    from surveillance_pipeline.detectors.settings import RULES

    for name in [args.only] if args.only else RULES:
        done = subprocess.run([sys.executable, __file__, "--child", name, "--trades", str(args.trades),
                               "--orders", str(args.orders)], capture_output=True, text=True)
        if done.returncode:
            print(f"{name:<18} FAILED {done.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:<18} {r['seconds']:7.1f} s wall {r['cpu']:7.1f} s CPU  peak RSS {r['peak_rss_mb']:7.0f} MB "
              f"(inputs loaded {r['loaded_mb']:.0f} MB)  findings {r['findings']}", flush=True)


if __name__ == "__main__":
    main()
