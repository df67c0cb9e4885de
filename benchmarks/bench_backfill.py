"""A 30-day backfill of hourly windows with BigQuery's job latency simulated: window by window
(one stage, load and MERGE each, as bqtui did before) against coalesced groups.

    .venv/bin/python benchmarks/bench_backfill.py [--latency 1.5] [--days 30]
        [--events-per-hour 20] [--serial-windows 48]

Everything is local: the real `bqtui run NAME --start … --end …` in a subprocess, the embedded
ClickHouse, the BigQuery emulator behind the test harness's proxy, which keeps every job
RUNNING for ``--latency`` seconds (real BigQuery answers a load or a MERGE in seconds, whatever
its size). The window-by-window run covers ``--serial-windows`` windows and is extrapolated
to the whole range (it is linear: each window waits for the same jobs); pass
``--serial-windows 0`` to run it over the whole range. Prints seconds, jobs, rows and the
export process's peak RSS.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="bqtui-bench-backfill-"))
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
os.environ["XDG_DATA_HOME"] = str(WORK / "xdg-data")
os.environ["XDG_CONFIG_HOME"] = str(WORK / "xdg-config")
os.environ["BQTUI_DATA_DIR"] = str(WORK / "data")
os.environ.setdefault("BQTUI_BQEMULATOR_VENV", str(ROOT / ".bqemu-venv"))
sys.path.insert(0, str(ROOT))

from bqtui.demo.emulator import default_venv_dir, ensure_installed, start_emulator  # noqa: E402
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle  # noqa: E402

PROJECT = "bench"
BQTUI = str(Path(sys.executable).parent / "bqtui")
START = datetime(2024, 4, 1, tzinfo=UTC)

SEED = """
import sys
from bqtui.demo import data as demo_data
from bqtui.source.clickhouse import ClickHouseSource
dsn, hours, per_hour = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with ClickHouseSource(dsn) as source:
    demo_data.create_source_tables(source.client)
    n = hours * per_hour
    source.client.command(
        "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id,"
        " elements_chain, created_at, person_id, inserted_at, _timestamp)"
        " SELECT generateUUIDv4(), '$pageview', '{\\"$current_url\\": \\"https://example.com/\\"}',"
        " t, 1, toString(number % 97), '', t, generateUUIDv4(), t, toDateTime(t)"
        f" FROM (SELECT number, toDateTime64('2024-04-01 00:00:00', 6, 'UTC')"
        f" + toIntervalSecond(intDiv(number * {hours * 3600}, {n})) AS t FROM numbers({n}))"
    )
"""


def run_cli(argv: list[str], env: dict) -> tuple[float, int, str, str]:
    """Run the real CLI; return seconds, its own peak RSS (MB) and its output."""
    out_file, err_file = WORK / "out.txt", WORK / "err.txt"
    started = time.monotonic()
    with open(out_file, "w") as out, open(err_file, "w") as err:
        process = subprocess.Popen([BQTUI, *argv], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"bqtui {' '.join(argv)} failed:\n{err_file.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss // 1024, out_file.read_text(), err_file.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=1.5, help="seconds each job runs")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-hour", type=int, default=20)
    parser.add_argument("--serial-windows", type=int, default=48)
    args = parser.parse_args()
    hours = args.days * 24
    end = START + timedelta(hours=hours)
    dsn = f"chdb://{WORK / 'clickhouse'}"
    subprocess.run(
        [sys.executable, "-c", SEED, dsn, str(hours), str(args.events_per_hour)], check=True
    )
    with (
        start_emulator(ensure_installed(default_venv_dir()), log_file=WORK / "bq.log") as emulator,
        FakeGoogle(emulator.url) as google,
    ):
        google.add_project(PROJECT)
        admin = google.admin_client(PROJECT)
        results = {}
        for mode, windows in (
            ("window by window", args.serial_windows or hours),
            ("coalesced", hours),
        ):
            dataset = "serial" if mode == "window by window" else "coalesced"
            admin.create_dataset(f"{PROJECT}.{dataset}")
            account = google.new_account(
                PROJECT,
                f"bench-{dataset}",
                project_permissions=JOB_USER,
                dataset_permissions={dataset: DATA_EDITOR},
            )
            key = account.write_key(WORK / f"{dataset}.json")
            env = dict(
                os.environ,
                BQTUI_DB=str(WORK / f"{dataset}.db"),
                BQTUI_NOW=(end + timedelta(hours=1)).isoformat(),
            )
            if mode == "window by window":
                env["BQTUI_GROUP_WINDOWS"] = "1"
            run_cli(
                [
                    "add",
                    "--name",
                    dataset,
                    "--key-file",
                    str(key),
                    "--dataset-id",
                    dataset,
                    "--table-id",
                    "events",
                    "--interval",
                    "hour",
                    "--start",
                    START.isoformat(),
                    "--source-dsn",
                    dsn,
                    "--bigquery-endpoint",
                    google.api_endpoint,
                ],
                env,
            )
            google.proxy.set_job_latency(args.latency)
            google.proxy.reset_calls()
            range_end = START + timedelta(hours=windows)
            seconds, peak, out, _ = run_cli(
                ["run", dataset, "--start", START.isoformat(), "--end", range_end.isoformat()],
                env,
            )
            jobs = len(google.proxy.calls_to("jobs.insert"))
            google.proxy.set_job_latency(0)
            rows = next(
                iter(
                    admin.query(f"SELECT count(*) AS n FROM `{PROJECT}.{dataset}.events`").result()
                )
            )["n"]
            results[mode] = {
                "windows": windows,
                "seconds": seconds,
                "seconds_per_window": seconds / windows,
                "projected_seconds": seconds / windows * hours,
                "jobs": jobs,
                "rows": rows,
                "peak_rss_mb": peak,
                "summary": out.strip(),
            }
    serial, coalesced = results["window by window"], results["coalesced"]
    print(
        f"Backfill of {hours} hourly windows ({args.days} days, {args.events_per_hour} events "
        f"an hour), every BigQuery job RUNNING for {args.latency} s:\n"
    )
    print(f"| runner | windows run | seconds | s/window | {hours} windows | jobs | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['windows']} | {r['seconds']:.1f} | {r['seconds_per_window']:.2f} "
            f"| {r['projected_seconds'] / 60:.1f} min | {r['jobs']} | {r['peak_rss_mb']} MB |"
        )
    speedup = serial["projected_seconds"] / coalesced["projected_seconds"]
    print(
        f"\nCoalesced is {speedup:.1f}× faster than window by window "
        f"({coalesced['rows']:,} rows exported)."
    )
    print(json.dumps(results, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
