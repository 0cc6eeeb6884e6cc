"""Import throughput for ~1 M generated trades: validate, import into SQLite, import into PostgreSQL.

Each phase runs in its own process so that its peak RSS is its own. Prints figures; asserts nothing.
Usage: python benchmarks/bench_ingest.py [--trades 1000000]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def peak_rss_mb() -> float:
    # VmHWM is this process image's own peak; ru_maxrss would carry the parent's peak across exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase(name: str, trades_csv: Path, workdir: Path) -> None:
    from surveillance_pipeline.config import load_settings
    from surveillance_pipeline.ingest.importer import ImportOptions
    from surveillance_pipeline.ingest.service import import_file, validate_file
    from surveillance_pipeline.storage.database import Database

    env = {"SURVEILLANCE__PATHS__REJECTS_DIR": str(workdir / "rejects")}
    if name == "validate":
        settings = load_settings(environ=env)
        start = time.perf_counter()
        result = validate_file(trades_csv, ImportOptions(), settings)
    else:
        url = f"sqlite:///{workdir / 'bench.db'}" if name == "import-sqlite" else POSTGRES
        settings = load_settings(environ={**env, "DATABASE_URL": url})
        database = Database(settings.database_url)
        database.migrate()
        start = time.perf_counter()
        result = import_file(trades_csv, ImportOptions(), settings, database)
        database.dispose()
    seconds = time.perf_counter() - start
    print(f"{name:<16} {result.rows_read:>10,} rows  {seconds:7.2f} s  {result.rows_read / seconds:>10,.0f} rows/s  "
          f"peak RSS {peak_rss_mb():7.0f} MB  (accepted {result.rows_accepted:,}, rejected {result.rows_rejected:,})")


def _postgres_database() -> str | None:
    import sqlalchemy as sa

    from surveillance_pipeline.storage.database import normalize_url

    try:
        admin = sa.create_engine(normalize_url(POSTGRES), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        name = f"surveillance_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return sa.make_url(normalize_url(POSTGRES)).set(database=name).render_as_string(hide_password=False)
    except sa.exc.OperationalError as error:
        print(f"import-postgres  skipped: PostgreSQL unreachable at {POSTGRES} ({str(error.orig).splitlines()[0]})")
        return None


def _drop(url: str) -> None:
    import sqlalchemy as sa

    from surveillance_pipeline.storage.database import normalize_url

    name = sa.make_url(url).database
    admin = sa.create_engine(normalize_url(POSTGRES), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--phase")
    parser.add_argument("--csv")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.phase:
        phase(args.phase, Path(args.csv), Path(args.workdir))
        return

    from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario, write_scenario

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        days = 10
        start = time.perf_counter()
        scenario = generate_scenario(ScenarioSpec(days=days, seed=1, trades_per_day=args.trades // days))
        generated = time.perf_counter() - start
        paths = write_scenario(scenario, workdir / "scenario")
        size_mb = paths["trades"].stat().st_size / 1e6
        print(f"generate         {scenario.trades.height:>10,} trades {generated:7.2f} s  "
              f"({scenario.trades.height / generated:,.0f} trades/s); trades.csv {size_mb:.0f} MB")
        del scenario
        for name in ("validate", "import-sqlite", "import-postgres"):
            env = dict(os.environ)
            if name == "import-postgres":
                url = _postgres_database()
                if url is None:
                    continue
                env["TEST_POSTGRES_URL"] = url
            subprocess.run([sys.executable, __file__, "--phase", name, "--csv", str(paths["trades"]),
                            "--workdir", str(workdir)], check=True, env=env)
            if name == "import-postgres":
                _drop(url)


if __name__ == "__main__":
    main()
