#!/usr/bin/env python
"""Encoding one 1M-event window to a load-ready Parquet file (issue 19): host CPU and memory.

    .venv/bin/python benchmarks/bench_encoding.py [--rows 1000000] [--runs 3] [--json-type]

Uses bench_export.py's generated data (cached in --data-dir). Each variant runs in its own
process, for the embedded engine (ClickHouse runs inside bqtui's process: its CPU counts as the
host's) and over HTTP (the test stand-in server runs ClickHouse in another process: the figures
are bqtui's process alone):

* host        the old path: ClickHouseSource.stream (Arrow) -> EVENTS.repair_batch ->
              conform_batch + pyarrow's writer (write_parquet_files).
* clickhouse  the new default path: the window's few rows with nasty JSON text encoded here,
              then ClickHouse writes the load-ready SELECT's Parquet (load_ready_select,
              ClickHouseSource.write_parquet); bqtui reads only the footer.
* native      ClickHouse's writer alone: the model's SELECT ... FORMAT Parquet, no conforming.

CPU-seconds are getrusage(RUSAGE_SELF) user + system over the encode; peak RSS is ru_maxrss.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_export import (  # noqa: E402 - after the path is set
    RESULT_PREFIX,
    TEAM_ID,
    WINDOW_END,
    WINDOW_START,
    chdb_dir,
    cpu_seconds,
    emit,
    ensure_data,
    rss_now_mb,
)

VARIANTS = ("host", "clickhouse", "native")


def child(args) -> None:
    from bqtui.core.config import ExportConfig
    from bqtui.models.events import EVENTS
    from bqtui.source.clickhouse import ClickHouseSource

    export = ExportConfig(
        name="bench", dataset_id="b", table_id="e", team_id=TEAM_ID, json_type=args.json_type
    )
    if args.http:
        from tests.harness.clickhouse_http import ClickHouseHttpServer

        with ClickHouseHttpServer(Path(args.chdb_dir)) as server:
            run_variant(args, EVENTS, export, ClickHouseSource(server.dsn("default")))
    else:
        run_variant(args, EVENTS, export, ClickHouseSource(f"chdb://{args.chdb_dir}"))


def run_variant(args, model, export, source) -> None:
    from bqtui.models.load_ready import PARQUET_SETTINGS, host_rows_select, load_ready_select
    from bqtui.pipeline.encode import clickhouse_parquet_file, host_rows_json, write_parquet_files

    query = model.build_query(export)
    params = model.query_parameters(export, WINDOW_START, WINDOW_END)
    fields = [f for f in model.fields if f.from_source]
    json_fields = {f.name for f in fields if f.json_capable} if args.json_type else set()
    source.scalar("SELECT 1")  # open the engine before the clock starts
    base_rss = rss_now_mb()
    rows = out_bytes = 0
    with tempfile.TemporaryDirectory(prefix="bench-encoding-") as tmp:
        cpu0, started = cpu_seconds(), time.perf_counter()
        if args.variant == "host":
            with source.stream(query, params) as batches:
                repaired = map(model.repair_batch, batches)
                for load_file in write_parquet_files(repaired, fields, json_fields, Path(tmp)):
                    rows += load_file.rows
                    out_bytes += load_file.bytes
        else:
            if args.variant == "clickhouse":
                with source.stream(host_rows_select(model, query), params) as batches:
                    host_rows = host_rows_json(
                        map(model.repair_batch, batches), fields, json_fields
                    )
                sql = load_ready_select(model, fields, query, host_rows or None)
                settings = PARQUET_SETTINGS
            else:
                sql, settings = query, {**PARQUET_SETTINGS}

            def write(path: Path) -> None:
                source.write_parquet(sql, params, settings, path)

            written = clickhouse_parquet_file(write, Path(tmp), model.partition_field)
            if written is not None:
                rows, out_bytes = written.load_file.rows, written.load_file.bytes
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu0
    emit(
        {
            "variant": args.variant,
            "http": args.http,
            "rows": rows,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "base_rss_mb": base_rss,
            "out_bytes": out_bytes,
        }
    )


def run_child(argv: list[str]) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), *argv]
    done = subprocess.run(command, capture_output=True, cwd=ROOT, stdin=subprocess.DEVNULL)
    for line in done.stdout.decode().splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.decode()[-3000:]}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json-type", action="store_true")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "bqtui-bench"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--http", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--chdb-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        child(args)
        return
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_data(args.rows, data_dir, data_dir / "bench_encoding.log", 16 * 1024)
    path = chdb_dir(data_dir, args.rows)
    print(f"{args.rows:,} events, one window, {'JSON' if args.json_type else 'STRING'} columns")
    print("| source | variant | rows | wall s | host CPU-s | peak RSS MB | Parquet MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for http in (False, True):
        for variant in VARIANTS:
            argv = ["--variant", variant, "--chdb-dir", str(path)]
            argv += ["--http"] * http + ["--json-type"] * args.json_type
            results = [run_child(argv) for _ in range(args.runs)]
            median = {
                k: statistics.median(r[k] for r in results) for k in ("seconds", "cpu_seconds")
            }
            print(
                f"| {'HTTP' if http else 'embedded'} | {variant} | {results[0]['rows']:,} "
                f"| {median['seconds']:.2f} | {median['cpu_seconds']:.2f} "
                f"| {max(r['peak_rss_mb'] for r in results):.0f} "
                f"| {results[0]['out_bytes'] / 1e6:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
