#!/usr/bin/env python
"""Benchmark of bqtui's events export (issue 5): a script, not a timed test.

    .venv/bin/python benchmarks/bench_export.py [--rows 1000000] [--runs 3] [--with-10m]
                                                [--skip-dlt] [--skip-emulator] [--prefetch]

Generates the demo generator's bulk events into an embedded ClickHouse (chdb) once (cached in
--data-dir), then runs every variant --runs times, each run in its own subprocess (one chdb
path per process, peak RSS per process), one after the other, and prints markdown tables:

* native        ClickHouse's own Parquet writer: the same SELECT ... INTO OUTFILE ... FORMAT
                Parquet (zstd) through chdb: the practical limit of extract + encode.
* bqtui-encode  (a) bqtui's extract + encode of one window holding all rows: ClickHouseSource
                .stream -> the runner's batch counter -> EVENTS.repair_batch ->
                write_parquet_files; no upload.
* bqtui-prefetch (a) with the source's batches pulled in a reader thread (a bounded queue),
                so ClickHouse overlaps the Parquet writer: an experiment, not in the
                core, monkeypatched into that process only; --prefetch adds it.
* dlt           dlt's natural path: a dlt.resource yielding the Arrow batches of
                clickhouse-connect's query_arrow_stream, pipeline.extract() + normalize() to
                Parquet load files for the filesystem destination (run in benchmarks/.dlt-venv,
                created on first use with the project's chdb/clickhouse-connect/pyarrow).
* bqtui-e2e     (b) ExportRunner.run_export into the local BigQuery emulator (upload, stage
                table, MERGE); the emulator's speed is not ours.
* bqtui-http    (a) over ClickHouse's HTTP interface (ArrowStream): the same data served by the
                test stand-in (tests/harness/clickhouse_http.py, the real engine in another
                process); RSS is bqtui's process alone.

Child processes print one JSON line; the parent also watches each child's RSS and kills it
above --rss-cap-gb so a materialising variant at 10M rows cannot take the machine down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DLT_VENV = HERE / ".dlt-venv"
WINDOW_START = datetime(2024, 5, 1, tzinfo=UTC)
WINDOW_END = datetime(2024, 5, 2, tzinfo=UTC)
TEAM_ID = 1
SEED = 7
RESULT_PREFIX = "BENCH-RESULT "
GENERATOR_TAG = "generate_bulk_events-v1"  # bump when the generator's rows change
EMULATOR_DATASET = "bqtui_bench"
STAGES_A = ("query", "convert", "write")
STAGES_B = ("query", "convert", "write", "upload", "load_wait", "merge", "ddl")

VARIANT_LABELS = {
    "native": "ClickHouse native Parquet (1)",
    "bqtui-encode": "bqtui extract + encode (a)",
    "bqtui-prefetch": "bqtui (a) + prefetch thread",
    "dlt": "dlt extract + normalize (2)",
    "bqtui-e2e": "bqtui end to end, emulator (b)",
    "bqtui-http": "bqtui extract + encode over HTTP (a, server)",
}


# -- helpers shared by parent and children (stdlib only: the dlt child has no bqtui) ----------


def rss_now_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # KiB on Linux


def cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emit(result: dict) -> None:
    result["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # chdb's exit handler takes ~2 s; nothing is left to flush, so skip it.
    os._exit(0)


def load_spec(path: str) -> dict:
    return json.loads(Path(path).read_text())


def chdb_dir(data_dir: Path, rows: int) -> Path:
    return data_dir / f"chdb-{rows}"


# -- child: data generation --------------------------------------------------------------------


def child_generate(args) -> None:
    import clickhouse_connect

    from benchmarks.bulk_data import generate_bulk_events

    path = Path(args.chdb_dir)
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    started = time.perf_counter()
    generate_bulk_events(
        client, n=args.rows, start=WINDOW_START, end=WINDOW_END, seed=SEED, team_id=TEAM_ID
    )
    seconds = time.perf_counter() - started
    in_window = client.query(
        "SELECT count(), sum(length(properties)) FROM events WHERE team_id = {t:Int64} AND "
        "COALESCE(inserted_at, toDateTime64(_timestamp, 6, 'UTC')) >= {s:DateTime64(6, 'UTC')} "
        "AND COALESCE(inserted_at, toDateTime64(_timestamp, 6, 'UTC')) < {e:DateTime64(6, 'UTC')}",
        parameters={"t": TEAM_ID, "s": WINDOW_START, "e": WINDOW_END},
    ).first_row
    client.close()
    emit(
        {
            "variant": "generate",
            "rows": args.rows,
            "rows_in_window": int(in_window[0]),
            "properties_bytes": int(in_window[1]),
            "seconds": seconds,
        }
    )


# -- child: ClickHouse's own Parquet writer -------------------------------------------------


def child_native(args) -> None:
    import clickhouse_connect

    spec = load_spec(args.spec)
    client = clickhouse_connect.get_client(dsn=f"chdb://{args.chdb_dir}")
    params = _spec_parameters(spec)
    client.command("SELECT 1")
    with tempfile.TemporaryDirectory(prefix="bench-native-", dir=args.work_dir) as tmp:
        out = Path(tmp) / "native.parquet"
        base_rss = rss_now_mb()
        cpu0, started = cpu_seconds(), time.perf_counter()
        client.command(
            spec["sql"].rstrip()
            + f"\nINTO OUTFILE '{out}' FORMAT Parquet"
            + "\nSETTINGS output_format_parquet_compression_method = 'zstd', "
            "output_format_parquet_string_as_string = 1",
            parameters=params,
        )
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu0
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(out).metadata.num_rows
        out_bytes = out.stat().st_size
    emit(
        {
            "variant": "native",
            "rows": rows,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "base_rss_mb": base_rss,
            "out_bytes": out_bytes,
            "files": 1,
        }
    )


def _spec_parameters(spec: dict) -> dict:
    params = dict(spec["params"])
    for name in ("window_start", "window_end"):
        params[name] = datetime.fromisoformat(params[name])
    return params


# -- instrumentation of bqtui's stages (monkeypatched from the outside) ---------------------


class Stages:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.source_bytes = 0

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def timing(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def timed_iter(self, iterator, name: str):
        iterator = iter(iterator)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(name, time.perf_counter() - started)
                return
            self.add(name, time.perf_counter() - started)
            yield item


def instrument_bqtui(stages: Stages, prefetch: bool = False) -> None:
    """Wrap bqtui's stages with timers (and maybe add the prefetch thread), in this process."""
    import types

    import pyarrow.parquet as pq

    from bqtui.models.events import EVENTS
    from bqtui.pipeline import encode
    from bqtui.source.clickhouse import ClickHouseSource

    if prefetch:
        _patch_prefetch()

    original_stream = ClickHouseSource.stream

    @contextlib.contextmanager
    def timed_stream(self, sql, parameters):
        started = time.perf_counter()
        with original_stream(self, sql, parameters) as batches:
            stages.add("query", time.perf_counter() - started)
            yield stages.timed_iter(batches, "query")

    ClickHouseSource.stream = timed_stream

    original_repair = EVENTS.repair_batch

    def timed_repair(batch):
        with stages.timing("convert"):
            return original_repair(batch)

    object.__setattr__(EVENTS, "repair_batch", timed_repair)

    original_conform = encode.conform_batch

    def timed_conform(batch, fields, json_fields):
        with stages.timing("convert"):
            conformed = original_conform(batch, fields, json_fields)
        stages.source_bytes += conformed.nbytes
        return conformed

    encode.conform_batch = timed_conform

    class TimedParquetWriter(pq.ParquetWriter):
        def __init__(self, *args, **kwargs):
            with stages.timing("write"):
                super().__init__(*args, **kwargs)

        def write_batch(self, *args, **kwargs):
            with stages.timing("write"):
                return super().write_batch(*args, **kwargs)

        def close(self):
            with stages.timing("write"):
                return super().close()

    proxy = types.ModuleType("pyarrow.parquet.timed")
    proxy.__dict__.update(pq.__dict__)
    proxy.ParquetWriter = TimedParquetWriter
    encode.pq = proxy


# -- the prefetch experiment (not in the core) -----------------------------------------------


def _patch_prefetch(depth: int = 3) -> None:
    """Pull the source's batches in a thread, so ClickHouse and the Parquet writer overlap.

    Both release the GIL in their C++ parts; a bounded queue keeps memory flat.
    """
    import queue
    import threading

    from bqtui.source import clickhouse as source_module

    original = source_module.ClickHouseSource.stream
    done = object()

    @contextlib.contextmanager
    def stream(self, sql, parameters):
        with original(self, sql, parameters) as batches:
            pending: queue.Queue = queue.Queue(maxsize=depth)
            stop = threading.Event()

            def pull():
                try:
                    for batch in batches:
                        while not stop.is_set():
                            try:
                                pending.put(batch, timeout=0.1)
                                break
                            except queue.Full:
                                continue
                        if stop.is_set():
                            return
                    pending.put(done)
                except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
                    pending.put(error)

            def consume():
                while True:
                    item = pending.get()
                    if item is done:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item

            thread = threading.Thread(target=pull, name="bqtui-prefetch", daemon=True)
            thread.start()
            try:
                yield consume()
            finally:
                stop.set()
                thread.join()

    source_module.ClickHouseSource.stream = stream


# -- child: bqtui extract + encode (a) ------------------------------------------------------


def child_bqtui_http(args) -> None:
    """(a) over ClickHouse's HTTP interface: the same data served by the test stand-in (the
    real engine in another process), read by ClickHouseSource as from a server."""
    from tests.harness.clickhouse_http import ClickHouseHttpServer

    with ClickHouseHttpServer(Path(args.chdb_dir)) as server:
        child_bqtui_encode(args, prefetch=False, source_dsn=server.dsn("default"))


def child_bqtui_encode(args, prefetch: bool, source_dsn: str | None = None) -> None:
    from bqtui.core.config import ExportConfig
    from bqtui.models.events import EVENTS
    from bqtui.pipeline.batch_counter import BatchCounter
    from bqtui.pipeline.encode import write_parquet_files
    from bqtui.source.clickhouse import ClickHouseSource

    stages = Stages()
    instrument_bqtui(stages, prefetch)
    spec = load_spec(args.spec)
    export = ExportConfig(
        name="bench",
        dataset_id="bench",
        table_id="events",
        team_id=TEAM_ID,
        json_type=spec["json_type"],
    )
    sql = EVENTS.build_query(export)
    params = EVENTS.query_parameters(export, WINDOW_START, WINDOW_END)
    fields = [f for f in EVENTS.fields if f.from_source]
    json_fields = {f.name for f in fields if f.json_capable} if spec["json_type"] else set()
    source = ClickHouseSource(source_dsn or f"chdb://{args.chdb_dir}")
    source.scalar("SELECT 1")  # open the engine before the clock starts
    counter = BatchCounter(EVENTS.partition_field)
    files = out_bytes = 0
    base_rss = rss_now_mb()
    cpu0, started = cpu_seconds(), time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-bqtui-", dir=args.work_dir) as tmp,
        source.stream(sql, params) as batches,
    ):
        counted = counter.count(batches, lambda rows: None)
        repaired = map(EVENTS.repair_batch, counted)
        for load_file in write_parquet_files(repaired, fields, json_fields, Path(tmp)):
            files += 1
            out_bytes += load_file.bytes
            load_file.path.unlink()  # as the runner does once a file is loaded
    seconds = time.perf_counter() - started
    emit(
        {
            "variant": args.variant,
            "rows": counter.rows,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds() - cpu0,
            "base_rss_mb": base_rss,
            "out_bytes": out_bytes,
            "source_bytes": stages.source_bytes,
            "files": files,
            "stages": stages.seconds,
        }
    )


# -- child: bqtui end to end into the emulator (b) ------------------------------------------


def child_bqtui_e2e(args) -> None:
    from google.cloud import bigquery as bq

    from bqtui.core.config import ExportConfig, Interval, Model, validate_export
    from bqtui.demo.environment import DEMO_PROJECT, DemoTokenEndpoint, _demo_key, use_demo_keyring
    from bqtui.destination import bigquery as bigquery_module
    from bqtui.pipeline.runner import ExportRunner
    from bqtui.source.clickhouse import ClickHouseSource
    from bqtui.state import secrets
    from bqtui.state.store import Store
    from bqtui.state.windows import Window

    stages = Stages()
    instrument_bqtui(stages)
    spec = load_spec(args.spec)

    upload = {"seconds": 0.0}
    original_load = bq.Client.load_table_from_file

    def timed_load(self, *a, **k):
        started = time.perf_counter()
        try:
            return original_load(self, *a, **k)
        finally:
            upload["seconds"] += time.perf_counter() - started
            stages.add("upload", time.perf_counter() - started)

    bq.Client.load_table_from_file = timed_load
    destination_class = bigquery_module.BigQueryDestination
    original_await = destination_class._await_job

    def timed_await(self, submit, job_id, doing, dataset_id):
        before = upload["seconds"]
        started = time.perf_counter()
        try:
            return original_await(self, submit, job_id, doing, dataset_id)
        finally:
            elapsed = time.perf_counter() - started
            if doing.startswith("merging"):
                stages.add("merge", elapsed)
            else:
                stages.add("load_wait", elapsed - (upload["seconds"] - before))

    destination_class._await_job = timed_await
    for name in ("prepare_table", "create_stage_table", "drop_table"):
        original = getattr(destination_class, name)

        def timed(self, *a, _original=original, **k):
            with stages.timing("ddl"):
                return _original(self, *a, **k)

        setattr(destination_class, name, timed)

    with tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=args.work_dir) as tmp:
        folder = Path(tmp)
        use_demo_keyring(folder)
        token_endpoint = DemoTokenEndpoint()
        key = _demo_key(token_endpoint.token_uri)
        store = Store(folder / "bqtui.db")
        table_id = f"events_{os.getpid()}_{int(time.time())}"
        export = store.add_export(
            validate_export(
                ExportConfig(
                    name=f"bench-{os.getpid()}",
                    dataset_id=EMULATOR_DATASET,
                    table_id=table_id,
                    model=Model.EVENTS,
                    interval=Interval.DAY,
                    team_id=TEAM_ID,
                    json_type=spec["json_type"],
                    source_dsn=f"chdb://{args.chdb_dir}",
                    bigquery_endpoint=args.emulator_url,
                    start_at=WINDOW_START,
                )
            )
        )
        secrets.store_service_account_key(export.uid, json.dumps(key))
        ClickHouseSource(export.source_dsn).scalar("SELECT 1")  # open the engine first
        runner = ExportRunner(store, work_dir=folder)
        base_rss = rss_now_mb()
        cpu0, started = cpu_seconds(), time.perf_counter()
        result = runner.run_export(export, windows=[Window(WINDOW_START, WINDOW_END)])
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu0
        if result.status != "succeeded":
            raise SystemExit(f"e2e export {result.status}: {result.error}")
        # Untimed: check what arrived, then drop the table to keep the emulator small.
        from bqtui.destination.keyfile import parse_key_text

        destination = destination_class(parse_key_text(json.dumps(key)), endpoint=args.emulator_url)
        table_ref = f"{DEMO_PROJECT}.{EMULATOR_DATASET}.{table_id}"
        loaded = list(destination.client.query(f"SELECT COUNT(*) FROM `{table_ref}`").result())
        destination.client.delete_table(table_ref, not_found_ok=True)
        destination.close()
        store.close()
        token_endpoint.stop()
    emit(
        {
            "variant": "bqtui-e2e",
            "rows": result.rows,
            "rows_in_bigquery": int(loaded[0][0]),
            "seconds": seconds,
            "cpu_seconds": cpu,
            "base_rss_mb": base_rss,
            "out_bytes": result.bytes,
            "source_bytes": stages.source_bytes,
            "files": None,
            "stages": stages.seconds,
        }
    )


# -- child: dlt (runs in benchmarks/.dlt-venv: no bqtui imports) ----------------------------


def child_dlt(args) -> None:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import clickhouse_connect
    import dlt

    spec = load_spec(args.spec)
    params = _spec_parameters(spec)
    client = clickhouse_connect.get_client(dsn=f"chdb://{args.chdb_dir}")
    client.command("SELECT 1")

    @dlt.resource(name="events", write_disposition="append")
    def events():
        with client.query_arrow_stream(
            spec["sql"], parameters=params, settings=spec["settings"]
        ) as batches:
            yield from batches

    with tempfile.TemporaryDirectory(prefix="bench-dlt-", dir=args.work_dir) as tmp:
        os.environ["DLT_DATA_DIR"] = f"{tmp}/data"
        pipeline = dlt.pipeline(
            pipeline_name="bqtui_bench",
            pipelines_dir=f"{tmp}/pipelines",
            destination=dlt.destinations.filesystem(bucket_url=f"file://{tmp}/bucket"),
            dataset_name="bench",
        )
        base_rss = rss_now_mb()
        cpu0, started = cpu_seconds(), time.perf_counter()
        pipeline.extract(events(), loader_file_format="parquet")
        extracted = time.perf_counter()
        pipeline.normalize()
        normalized = time.perf_counter()
        cpu = cpu_seconds() - cpu0
        pipeline.load()
        loaded = time.perf_counter()
        parquet = list(Path(tmp, "bucket").rglob("*.parquet"))
        import pyarrow.parquet as pq

        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parquet)
        out_bytes = sum(p.stat().st_size for p in parquet)
    emit(
        {
            "variant": "dlt",
            "dlt_version": dlt.__version__,
            "rows": rows,
            "seconds": normalized - started,
            "cpu_seconds": cpu,
            "seconds_with_load": loaded - started,
            "base_rss_mb": base_rss,
            "out_bytes": out_bytes,
            "files": len(parquet),
            "stages": {
                "extract": extracted - started,
                "normalize": normalized - extracted,
                "load": loaded - normalized,
            },
        }
    )


# -- parent --------------------------------------------------------------------------------


def machine_description() -> dict:
    from importlib.metadata import version

    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_total = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "chdb": version("chdb"),
        "chdb_core": _maybe_version("chdb-core"),
        "clickhouse_connect": version("clickhouse-connect"),
        "pyarrow": version("pyarrow"),
        "google_cloud_bigquery": version("google-cloud-bigquery"),
    }


def _maybe_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def mem_available_gb() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class ChildFailed(RuntimeError):
    pass


def run_child(python: str, argv: list[str], log_file: Path, rss_cap_mb: float) -> dict:
    """Run one variant in its own process; watch its RSS and kill it above the cap."""
    command = [python, str(Path(__file__).resolve()), *argv]
    with open(log_file, "ab") as err:
        err.write(f"\n$ {' '.join(command)}\n".encode())
        err.flush()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, cwd=ROOT, stdin=subprocess.DEVNULL
        )
        watched_peak = 0.0
        killed = False
        while process.poll() is None:
            rss = _child_rss_mb(process.pid)
            watched_peak = max(watched_peak, rss)
            if rss > rss_cap_mb:
                process.kill()
                killed = True
                break
            time.sleep(0.05)
        stdout, _ = process.communicate()
    if killed:
        raise ChildFailed(f"killed above the RSS cap ({rss_cap_mb / 1024:.1f} GB)")
    for line in stdout.decode().splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
            result["watched_peak_rss_mb"] = watched_peak
            return result
    tail = log_file.read_text(errors="replace").splitlines()[-15:]
    raise ChildFailed(f"exit {process.returncode}; see {log_file}:\n" + "\n".join(tail))


def _child_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def ensure_data(rows: int, data_dir: Path, log_file: Path, rss_cap_mb: float) -> dict:
    path = chdb_dir(data_dir, rows)
    marker = path / "bench-ready.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("generator") == GENERATOR_TAG and info.get("rows") == rows:
            return info
    if path.exists():
        shutil.rmtree(path)
    log(f"generating {rows:,} events into {path} (~7 s per million rows)")
    result = run_child(
        sys.executable,
        ["--variant", "generate", "--rows", str(rows), "--chdb-dir", str(path)],
        log_file,
        rss_cap_mb,
    )
    if result["rows_in_window"] != rows:
        raise SystemExit(f"only {result['rows_in_window']} of {rows} rows fall in the window")
    info = {"generator": GENERATOR_TAG, **result}
    marker.write_text(json.dumps(info))
    log(f"generated in {result['seconds']:.1f} s")
    return info


def write_spec(data_dir: Path, json_type: bool) -> Path:
    from bqtui.core.config import ExportConfig
    from bqtui.models.events import EVENTS
    from bqtui.source.clickhouse import STREAM_SETTINGS

    export = ExportConfig(
        name="bench", dataset_id="bench", table_id="events", team_id=TEAM_ID, json_type=json_type
    )
    params = EVENTS.query_parameters(export, WINDOW_START, WINDOW_END)
    spec = {
        "sql": EVENTS.build_query(export),
        "params": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in params.items()},
        "settings": STREAM_SETTINGS,
        "json_type": json_type,
    }
    path = data_dir / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def ensure_dlt_venv(log_file: Path) -> str:
    python = DLT_VENV / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", "import dlt, chdb"], capture_output=True)
        if probe.returncode == 0:
            return str(python)
    from importlib.metadata import version

    pins = [
        f"clickhouse-connect[chdb]=={version('clickhouse-connect')}",
        f"chdb=={version('chdb')}",
        f"pyarrow=={version('pyarrow')}",
    ]
    if _maybe_version("chdb-core"):
        pins.append(f"chdb-core=={version('chdb-core')}")
    log(f"creating {DLT_VENV} with dlt and {' '.join(pins)} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
    with open(log_file, "ab") as err:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "dlt", *pins],
            check=True,
            stdout=err,
            stderr=err,
        )
    return str(python)


def start_emulator_for_bench(data_dir: Path):
    import json as _json

    from bqtui.demo.emulator import ensure_installed, start_emulator
    from bqtui.demo.environment import DEMO_PROJECT, DemoTokenEndpoint, _demo_key
    from bqtui.destination.bigquery import BigQueryDestination
    from bqtui.destination.keyfile import parse_key_text

    if "BQTUI_BQEMULATOR_VENV" not in os.environ and (ROOT / ".bqemu-venv").exists():
        os.environ["BQTUI_BQEMULATOR_VENV"] = str(ROOT / ".bqemu-venv")
    python = ensure_installed(log=log)
    emulator = start_emulator(python, log_file=data_dir / "emulator.log", timeout=60)
    token_endpoint = DemoTokenEndpoint()
    try:
        key = _demo_key(token_endpoint.token_uri)
        destination = BigQueryDestination(parse_key_text(_json.dumps(key)), endpoint=emulator.url)
        destination.client.create_dataset(f"{DEMO_PROJECT}.{EMULATOR_DATASET}", exists_ok=True)
        destination.close()
    finally:
        token_endpoint.stop()
    return emulator


def child_argv(variant: str, rows: int, data_dir: Path, spec: Path, extra=()) -> list[str]:
    return [
        "--variant",
        variant,
        "--rows",
        str(rows),
        "--chdb-dir",
        str(chdb_dir(data_dir, rows)),
        "--spec",
        str(spec),
        "--work-dir",
        str(data_dir / "work"),
        *extra,
    ]


def main_parent(args) -> None:
    data_dir = Path(args.data_dir).resolve()
    (data_dir / "work").mkdir(parents=True, exist_ok=True)
    log_file = data_dir / "children.log"
    rss_cap_mb = min(args.rss_cap_gb, max(2.0, mem_available_gb() - 3)) * 1024
    machine = machine_description()
    load_before = os.getloadavg()
    log(f"machine: {machine}; children's stderr goes to {log_file}")
    spec = write_spec(data_dir, args.json_type)
    if args.profile:
        run_profiles(args, data_dir, spec)
        return

    variants = ["native", "bqtui-encode", "bqtui-http"]
    if args.prefetch:
        variants.append("bqtui-prefetch")
    dlt_python = None
    if not args.skip_dlt and (not args.only or "dlt" in args.only):
        dlt_python = ensure_dlt_venv(log_file)
        variants.append("dlt")
    emulator = None
    if not args.skip_emulator and (not args.only or "bqtui-e2e" in args.only):
        log("starting the BigQuery emulator")
        emulator = start_emulator_for_bench(data_dir)
        variants.append("bqtui-e2e")
    if args.only:
        variants = [v for v in variants if v in args.only.split(",")]

    def run_variant(variant: str, rows: int) -> dict:
        python = dlt_python if variant == "dlt" else sys.executable
        extra = []
        if variant == "bqtui-e2e":
            extra = ["--emulator-url", emulator.url]
        argv = child_argv(variant, rows, data_dir, spec, extra)
        return run_child(python, argv, log_file, rss_cap_mb)

    results: dict[str, list[dict]] = {}
    failures: dict[str, str] = {}
    big: dict[str, dict | str] = {}
    try:
        info = ensure_data(args.rows, data_dir, log_file, rss_cap_mb)
        for run in range(1, args.runs + 1):
            for variant in variants:
                if variant in failures:
                    continue
                log(f"{args.rows:,} rows, run {run}/{args.runs}: {variant}")
                try:
                    result = run_variant(variant, args.rows)
                except ChildFailed as error:
                    failures[variant] = str(error)
                    log(f"{variant} failed: {error}")
                    continue
                _check_rows(result, args.rows)
                results.setdefault(variant, []).append(result)
                log(f"  {result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
        if args.with_10m:
            big_rows = 10_000_000
            ensure_data(big_rows, data_dir, log_file, rss_cap_mb)
            for variant in [v for v in variants if v != "bqtui-e2e"]:
                log(f"{big_rows:,} rows, once: {variant}")
                try:
                    result = run_variant(variant, big_rows)
                    _check_rows(result, big_rows)
                    big[variant] = result
                    log(f"  {result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
                except ChildFailed as error:
                    big[variant] = str(error)
                    log(f"{variant} at 10M failed: {error}")
    finally:
        if emulator is not None:
            emulator.stop()
    load_after = os.getloadavg()
    report = {
        "machine": machine,
        "load_before": load_before,
        "load_after": load_after,
        "rows": args.rows,
        "runs": args.runs,
        "json_type": args.json_type,
        "data": info,
        "results": results,
        "failures": failures,
        "10m": big,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    markdown = render(report)
    print(markdown)
    if args.output:
        Path(args.output).write_text(markdown)


# -- profile -------------------------------------------------------------------------------

PROFILE_BUCKETS = (  # first match wins, tested against the whole stack
    ("JSON repair regex (RE2 match_substring_regex)", ("re2::", "MatchSubstring")),
    ("JSON repair prefilter (byte scan)", ("might_need_repair", "suspicious_rows")),
    ("Parquet: zstd compression", ("ZSTD", "ZSTDCodec")),
    ("Parquet: dictionary encoding", ("DictEncoder", "WriteDictionaryPage", "FallbackToPlain")),
    ("Parquet: pages, levels, statistics, file I/O", ("ParquetWriter", "FileWriterImpl")),
    (
        "ClickHouse query + Arrow transfer (main thread waiting or decoding)",
        (
            "query_arrow_stream",
            "execute_raw",
            "StreamContext",
            "send_query",
            "record_batch",
            "ChdbRecordBatchReader",
            "_guarded",
            "RecordBatchReader",
            "timed_iter",
            "queue.get",
            "Queue.get",
            "consume",
        ),
    ),
    ("runner's batch counter (min/max of timestamps)", ("BatchCounter",)),
    ("conform (select/cast columns)", ("conform_batch",)),
)


def find_py_spy() -> str | None:
    for candidate in (ROOT / ".venv/bin/py-spy", DLT_VENV / "bin/py-spy"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("py-spy")


def summarize_profile(raw_file: Path) -> list[tuple[str, float]]:
    """Share of the timed section's samples (inside child_bqtui_encode, after setup)."""
    counts: dict[str, int] = {}
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if (
            "write_parquet_files" not in stack
            and "ClickHouseSource.stream" not in stack
            and ("timed_stream" not in stack)
        ):
            continue  # imports, engine start-up, result printing
        total += int(number)
        for name, needles in PROFILE_BUCKETS:
            if any(needle in stack for needle in needles):
                counts[name] = counts.get(name, 0) + int(number)
                break
        else:
            counts["other"] = counts.get("other", 0) + int(number)
    return (
        [
            (name, 100 * count / total)
            for name, count in sorted(counts.items(), key=lambda item: -item[1])
        ]
        if total
        else []
    )


def run_profiles(args, data_dir: Path, spec: Path) -> None:
    py_spy = find_py_spy()
    if py_spy is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy (into any venv)")
    ensure_data(args.rows, data_dir, data_dir / "children.log", 16 * 1024)
    for variant in ("bqtui-encode", "bqtui-prefetch") if args.prefetch else ("bqtui-encode",):
        raw = data_dir / f"profile-{variant}.txt"
        command = [
            py_spy,
            "record",
            "--native",
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--",
            sys.executable,
            str(Path(__file__).resolve()),
            *child_argv(variant, args.rows, data_dir, spec),
        ]
        log(f"profiling {variant}: {' '.join(command)}")
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(
            f"\nPy-spy profile of {VARIANT_LABELS[variant]}, {args.rows:,} rows (main thread, "
            f"native frames; % of samples in the timed section; raw stacks in {raw}):\n"
        )
        print("| where | share |\n|---|---:|")
        for name, share in summarize_profile(raw):
            print(f"| {name} | {share:.1f} % |")


def _check_rows(result: dict, rows: int) -> None:
    if result["rows"] != rows:
        raise SystemExit(f"{result['variant']} exported {result['rows']} rows, not {rows}")


# -- the report ----------------------------------------------------------------------------


def _median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def _fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def render(report: dict) -> str:
    results, rows = report["results"], report["rows"]
    machine = report["machine"]
    source_bytes = None
    for variant in ("bqtui-encode", "bqtui-prefetch"):
        if results.get(variant):
            source_bytes = _median(results[variant], "source_bytes")
            break
    lines = []
    lines.append(
        f"Events export of one window holding {rows:,} rows "
        f"({'JSON' if report['json_type'] else 'STRING'} columns), medians of "
        f"{report['runs']} runs, each in its own process."
    )
    lines.append(
        f"Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['ram_gib']} GiB RAM, "
        f"Python {machine['python']}, chdb {machine['chdb']} (engine {machine['chdb_core']}), "
        f"clickhouse-connect {machine['clickhouse_connect']}, pyarrow {machine['pyarrow']}"
        + (f", dlt {results['dlt'][0]['dlt_version']}" if results.get("dlt") else "")
        + f". Load average before/after: {report['load_before'][0]:.2f} / "
        f"{report['load_after'][0]:.2f}."
    )
    if source_bytes:
        lines.append(
            f"MB/s = the source's uncompressed Arrow bytes of the exported columns "
            f"({source_bytes / 1e6:,.0f} MB, {source_bytes / rows:,.0f} B/row; the same rows for "
            "every variant) per second of wall time. Spread = (max - min) / median of wall time."
        )
    lines.append("")
    lines.append(
        "| variant | rows/s | MB/s | wall s (min–max) | spread | CPU s | peak RSS | Parquet MB |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    order = ["native", "bqtui-encode", "bqtui-http", "bqtui-prefetch", "dlt", "bqtui-e2e"]
    order += [name for name in results if name not in order]
    for variant in order:
        runs = results.get(variant)
        if not runs:
            if variant in report["failures"]:
                lines.append(
                    f"| {VARIANT_LABELS.get(variant, variant)} | failed: "
                    f"{report['failures'][variant].splitlines()[0]} | | | | | | |"
                )
            continue
        wall = sorted(r["seconds"] for r in runs)
        median = statistics.median(wall)
        spread = (wall[-1] - wall[0]) / median if median else 0
        label = VARIANT_LABELS.get(variant, variant)
        mbps = f"{source_bytes / median / 1e6:,.0f}" if source_bytes else "–"
        lines.append(
            f"| {label} | {_fmt_int(rows / median)} | {mbps} | {median:.2f} "
            f"({wall[0]:.2f}–{wall[-1]:.2f}) | {100 * spread:.0f} % | "
            f"{_median(runs, 'cpu_seconds'):.2f} | {_median(runs, 'peak_rss_mb'):,.0f} MB | "
            f"{_median(runs, 'out_bytes') / 1e6:,.0f} |"
        )
    lines.append("")
    lines += render_ratios(report)
    lines.append("")
    lines += render_split(report)
    if report["10m"]:
        lines.append("")
        lines += render_growth(report)
    return "\n".join(lines)


def render_ratios(report: dict) -> list[str]:
    results = report["results"]

    def rate(variant):
        runs = results.get(variant)
        return report["rows"] / _median(runs, "seconds") if runs else None

    lines = ["| ratio of rows/s | value | target | |", "|---|---:|---:|---|"]
    for ours in ("bqtui-encode", "bqtui-prefetch"):
        if rate(ours) is None:
            continue
        name = "bqtui (a)" if ours == "bqtui-encode" else "bqtui (a) + prefetch"
        for other, target, label in (("native", 0.5, "ClickHouse native"), ("dlt", 2.0, "dlt")):
            if rate(other) is None:
                continue
            value = rate(ours) / rate(other)
            verdict = "met" if value >= target else f"missed by {target / value:.2f}×"
            lines.append(f"| {name} / {label} | {value:.2f} | ≥ {target:g} | {verdict} |")
    if len(lines) == 2:  # neither native nor dlt ran
        lines = []
    e2e = results.get("bqtui-e2e")
    if e2e:
        arrived = sorted({r["rows_in_bigquery"] for r in e2e})
        lines.insert(0, f"(b) check: the emulator's table held {arrived} rows after the runs.\n")
    if rate("bqtui-e2e") and rate("bqtui-encode"):
        lines.append(
            f"| bqtui (b) / bqtui (a) | {rate('bqtui-e2e') / rate('bqtui-encode'):.2f} | – | "
            "emulator-bound |"
        )
    return lines


def render_split(report: dict) -> list[str]:
    results = report["results"]
    lines = [
        "bqtui's time by stage (median seconds; query = ClickHouse + transfer until each Arrow "
        "batch is in Python, convert = repair + conform, write = Parquet encode + file, upload "
        "= load_table_from_file, load wait = load job's result(), merge = MERGE job, ddl = "
        "table create/get/drop, other = the rest):",
        "",
        "| variant | query | convert | write | upload | load wait | merge | ddl | other | total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in ("bqtui-encode", "bqtui-prefetch", "bqtui-e2e"):
        runs = results.get(variant)
        if not runs:
            continue
        cells = []
        for stage in STAGES_B:
            values = [r["stages"].get(stage, 0.0) for r in runs]
            if variant != "bqtui-e2e" and stage not in STAGES_A:
                cells.append("–")
            else:
                cells.append(f"{statistics.median(values):.2f}")
        other = statistics.median(r["seconds"] - sum(r["stages"].values()) for r in runs)
        total = _median(runs, "seconds")
        lines.append(
            f"| {VARIANT_LABELS[variant]} | {' | '.join(cells)} | {other:.2f} | {total:.2f} |"
        )
    if results.get("dlt"):
        runs = results["dlt"]
        lines.append("")
        lines.append(
            "dlt's time by step (median s): extract "
            f"{statistics.median(r['stages']['extract'] for r in runs):.2f}, normalize "
            f"{statistics.median(r['stages']['normalize'] for r in runs):.2f}; its load step "
            "to the local filesystem adds "
            f"{statistics.median(r['stages']['load'] for r in runs):.2f} (not in the table)."
        )
    return lines


def render_growth(report: dict) -> list[str]:
    results, big = report["results"], report["10m"]
    lines = [
        "Memory growth: 10,000,000 rows (one run) against the 1M medians; RSS before query = "
        "the process with its engine open, just before the timed part:",
        "",
        "| variant | RSS before query | peak RSS 1M | peak RSS 10M | 10M / 1M (target ≤ 1.2) "
        "| rows/s at 10M |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant, result in big.items():
        small = results.get(variant)
        small_rss = _median(small, "peak_rss_mb") if small else None
        small_text = f"{small_rss:,.0f} MB" if small_rss else "–"
        label = VARIANT_LABELS.get(variant, variant)
        if isinstance(result, str):
            lines.append(f"| {label} | – | {small_text} | {result} | – | – |")
            continue
        ratio = f"{result['peak_rss_mb'] / small_rss:.2f}" if small_rss else "–"
        lines.append(
            f"| {label} | {result['base_rss_mb']:,.0f} MB | {small_text} | "
            f"{result['peak_rss_mb']:,.0f} MB | {ratio} | "
            f"{_fmt_int(result['rows'] / result['seconds'])} |"
        )
    return lines


# -- entry point ---------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--with-10m", action="store_true", help="also 10M rows, once per variant")
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--skip-emulator", action="store_true")
    parser.add_argument(
        "--prefetch", action="store_true", help="also bqtui (a) with a reader thread (experiment)"
    )
    parser.add_argument("--only", help="comma-separated variants to run (default: all)")
    parser.add_argument(
        "--profile", action="store_true", help="only profile bqtui (a) with py-spy, then stop"
    )
    parser.add_argument("--json-type", action="store_true", help="export JSON, not STRING")
    parser.add_argument(
        "--data-dir",
        default=str(Path(tempfile.gettempdir()) / "bqtui-bench"),
        help="where generated chdb data is cached",
    )
    parser.add_argument("--rss-cap-gb", type=float, default=16.0)
    parser.add_argument("--json", help="also write raw results here")
    parser.add_argument("--output", help="also write the markdown here")
    # internal: one variant in this process
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--chdb-dir", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    parser.add_argument("--emulator-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.variant is None:
        main_parent(args)
        return
    if args.variant != "dlt":
        sys.path.insert(0, str(ROOT))
    children = {
        "generate": lambda: child_generate(args),
        "native": lambda: child_native(args),
        "bqtui-encode": lambda: child_bqtui_encode(args, prefetch=False),
        "bqtui-prefetch": lambda: child_bqtui_encode(args, prefetch=True),
        "bqtui-e2e": lambda: child_bqtui_e2e(args),
        "bqtui-http": lambda: child_bqtui_http(args),
        "dlt": lambda: child_dlt(args),
    }
    children[args.variant]()


if __name__ == "__main__":
    main()
