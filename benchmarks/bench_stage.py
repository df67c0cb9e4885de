#!/usr/bin/env python
"""Rows through Cloud Storage, not through bqtui (issue 19, part 3): bytes, CPU and memory of
bqtui's process on the stage path against the upload path, and a backfill of many windows.

    .venv/bin/python benchmarks/bench_stage.py [--rows 1000000] [--runs 1] [--latency 1.5]
        [--days 30] [--events-per-hour 20] [--skip-http] [--skip-backfill]

Everything is local and offline: the BigQuery emulator (it loads gs:// URIs from the folder
behind the Cloud Storage stand-in), the fake Google side (token endpoint, BigQuery proxy), the
Cloud Storage XML API stand-in (tests/harness/cloud_storage.py), all in or under this parent
process. Each variant runs the real ExportRunner in its own subprocess (the measured one):

* one window of --rows events (bench_export.py's generated data, cached in --data-dir), a day
  window, through the stage (ClickHouse's ``INSERT INTO FUNCTION s3(…)``, footers read back,
  one ``load_table_from_uri`` job) and through the upload path (ClickHouse's local Parquet,
  ``load_table_from_file``); embedded ClickHouse (chdb: the engine runs inside bqtui's
  process) and over HTTP (tests/harness/clickhouse_http.py: the engine in another process).
* a backfill of --days × 24 hourly windows (bench_backfill.py's data), every BigQuery job kept
  RUNNING for --latency seconds, stage path against upload path.

What bqtui's process moves is counted three ways: every byte its Python code sends or receives
on a socket (socket.socket's send/recv methods wrapped, by peer: ClickHouse, Cloud Storage,
BigQuery, token endpoint); /proc/self/io (rchar/wchar: read()/write() calls, i.e. files, not
send()/recv() on sockets; read_bytes/write_bytes: what reached the disk); and, beside it, what
the Cloud Storage stand-in received and sent in total (whoever called it). Embedded, ClickHouse's
s3() writer runs inside bqtui's process in C++ (its socket bytes are in none of bqtui's Python
counters, but they are in the process). CPU is getrusage(RUSAGE_SELF) user + system; peak RSS
is the measured process's ru_maxrss.

The stand-in answers without Nagle's delay and lists by prefix, as Cloud Storage does (both
fixed in tests/harness/cloud_storage.py after this benchmark found them).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
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
    ensure_data,
    log,
    rss_now_mb,
)

PROJECT = "bench"
DATASET = "bench_stage"
BUCKET = "bench-stage"
HMAC_ID = "GOOG1EBENCHSTAGEKEY"
PATHS = ("stage", "upload")
BACKFILL_START = datetime(2024, 4, 1, tzinfo=UTC)  # bench_backfill.py's START


# -- child: one export, measured ---------------------------------------------------------------


class SocketBytes:
    """Bytes bqtui's Python code sends and receives on sockets, by peer (socket.socket's
    methods wrapped in this process; ClickHouse's own C++ sockets are not seen)."""

    def __init__(self, peers: dict[str, str]):
        self.peers = {int(port): name for port, name in peers.items()}
        self.sent: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self._lock = threading.Lock()

    def _peer(self, sock) -> str:
        try:
            port = sock.getpeername()[1]
        except (OSError, IndexError, TypeError):
            return "other"
        return self.peers.get(port, "other")

    def _add(self, table: dict[str, int], sock, count: int) -> None:
        if count:
            peer = self._peer(sock)
            with self._lock:
                table[peer] = table.get(peer, 0) + count

    def install(self) -> None:
        import _socket

        base = _socket.socket
        counter = self

        def send(self, data, *args):
            sent = base.send(self, data, *args)
            counter._add(counter.sent, self, sent)
            return sent

        def sendall(self, data, *args):
            result = base.sendall(self, data, *args)
            counter._add(counter.sent, self, memoryview(data).nbytes)
            return result

        def recv(self, *args):
            data = base.recv(self, *args)
            counter._add(counter.received, self, len(data))
            return data

        def recv_into(self, buffer, *args):
            count = base.recv_into(self, buffer, *args)
            counter._add(counter.received, self, count)
            return count

        socket.socket.send = send  # type: ignore[method-assign]
        socket.socket.sendall = sendall  # type: ignore[method-assign]
        socket.socket.recv = recv  # type: ignore[method-assign]
        socket.socket.recv_into = recv_into  # type: ignore[method-assign]

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.received.clear()


def proc_io() -> dict[str, int]:
    values = {}
    with open("/proc/self/io") as io:
        for line in io:
            name, _, value = line.partition(":")
            values[name.strip()] = int(value)
    return values


def timed_stages() -> dict[str, float]:
    """Seconds in the stage path's steps, by wrapping them in this process."""
    from bqtui.pipeline import cloud_stage
    from bqtui.pipeline.cloud_stage import ExportStage
    from bqtui.source.clickhouse import ClickHouseSource

    seconds: dict[str, float] = {}

    def timed(owner, attribute: str, label: str) -> None:
        original = getattr(owner, attribute)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - started

        setattr(owner, attribute, wrapper)

    timed(cloud_stage, "window_load_ready_select", "host-rows query")
    timed(ClickHouseSource, "run_insert", "INSERT INTO FUNCTION s3")
    timed(ExportStage, "read_folder", "footers")
    timed(ExportStage, "delete_window", "delete folders")
    timed(ExportStage, "check_can_write", "write probe")
    return seconds


def child(spec_file: str) -> None:
    import resource

    from bqtui.core.config import ExportConfig, Interval, Model
    from bqtui.destination.keyfile import parse_key_text
    from bqtui.ops.export_setup import create_export
    from bqtui.pipeline.runner import ExportRunner
    from bqtui.source.clickhouse import ClickHouseSource
    from bqtui.state.store import Store
    from bqtui.state.windows import Window

    spec = json.loads(Path(spec_file).read_text())
    work = Path(spec["work_dir"])
    work.mkdir(parents=True, exist_ok=True)
    staged = spec["path"] == "stage"
    store = Store(work / "bqtui.db")
    start, end = (datetime.fromisoformat(spec[k]) for k in ("start", "end"))
    export = create_export(
        store,
        ExportConfig(
            name=spec["name"],
            dataset_id=spec["dataset"],
            table_id=spec["table"],
            model=Model.EVENTS,
            interval=Interval(spec["interval"]),
            team_id=TEAM_ID,
            source_dsn=spec["dsn"],
            bigquery_endpoint=spec["bigquery_endpoint"],
            start_at=start,
            stage=f"gs://{spec['bucket']}/{spec['prefix']}" if staged else None,
            stage_hmac_id=HMAC_ID if staged else None,
        ),
        parse_key_text(Path(spec["key_file"]).read_text()),
        stage_secret=Path(spec["hmac_secret_file"]).read_text().strip() if staged else None,
    )
    ClickHouseSource(spec["dsn"]).scalar("SELECT 1")  # open the engine before the clock
    sockets = SocketBytes(spec["peers"])
    sockets.install()
    stages = timed_stages()
    runner = ExportRunner(store, work_dir=work, now=lambda: end + timedelta(hours=1))
    base_rss = rss_now_mb()
    sockets.reset()
    io0, cpu0, started = proc_io(), cpu_seconds(), time.perf_counter()
    if spec["mode"] == "window":
        result = runner.run_export(export, windows=[Window(start, end)])
    else:
        result = runner.backfill(export, start, end)
    seconds = time.perf_counter() - started
    cpu, io1 = cpu_seconds() - cpu0, proc_io()
    if result.status != "succeeded":
        raise SystemExit(f"{spec['name']}: {result.status}: {result.error}")
    sys.stdout.write(
        RESULT_PREFIX
        + json.dumps(
            {
                "rows": result.rows,
                "bytes": result.bytes,
                "windows": result.windows_done,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "base_rss_mb": base_rss,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "io": {k: io1[k] - io0[k] for k in io1},
                "sent": sockets.sent,
                "received": sockets.received,
                "stages": stages,
            }
        )
        + "\n"
    )
    sys.stdout.flush()
    os._exit(0)  # chdb's exit handler takes ~2 s; nothing is left to flush


# -- parent ------------------------------------------------------------------------------------


class StorageCounter:
    """What the Cloud Storage stand-in received and sent (request and response bodies), from
    everyone: ClickHouse's s3() writer and bqtui's footer reads, lists and deletes."""

    def __init__(self, storage):
        self.received = self.sent = 0
        self.seconds = 0.0
        self.objects: set[str] = set()
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()
        answer = storage.answer

        def counted(handler, body):
            started = time.perf_counter()
            status, headers, reply = answer(handler, body)
            elapsed = time.perf_counter() - started
            path = urllib.parse.urlsplit(handler.path).path
            with self._lock:
                self.received += len(body)
                self.seconds += elapsed
                self.sent += 0 if handler.command == "HEAD" else len(reply)
                self.requests[handler.command] = self.requests.get(handler.command, 0) + 1
                if handler.command in ("PUT", "POST") and path.endswith(".parquet"):
                    self.objects.add(path)
            return status, headers, reply

        storage.answer = counted

    def take(self) -> dict:
        with self._lock:
            taken = {
                "received": self.received,
                "sent": self.sent,
                "objects": len(self.objects),
                "requests": dict(self.requests),
                "seconds": self.seconds,
            }
            self.received = self.sent = 0
            self.seconds = 0.0
            self.objects.clear()
            self.requests.clear()
        return taken


def run_child(spec: dict, log_file: Path) -> dict:
    spec_file = Path(spec["work_dir"]) / "spec.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_file)]
    with open(log_file, "ab") as err:
        err.write(f"\n$ {' '.join(command)}\n".encode())
        err.flush()
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=err, cwd=ROOT, stdin=subprocess.DEVNULL
        )
    for line in done.stdout.decode().splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = log_file.read_text(errors="replace").splitlines()[-20:]
    raise SystemExit(f"{spec['name']} failed (exit {done.returncode}):\n" + "\n".join(tail))


def seed_backfill(data_dir: Path, days: int, per_hour: int, log_file: Path) -> Path:
    """bench_backfill.py's rows (cached): ``per_hour`` events in each of ``days`` × 24 hours."""
    path = data_dir / f"chdb-backfill-{days}d-{per_hour}"
    marker = path / "bench-ready.json"
    if marker.exists():
        return path
    import benchmarks.bench_backfill as bench_backfill  # its module sets env for its own runs

    with open(log_file, "ab") as err:
        subprocess.run(
            [sys.executable, "-c", bench_backfill.SEED, f"chdb://{path}", str(days * 24)]
            + [str(per_hour)],
            check=True,
            stdout=err,
            stderr=err,
            cwd=ROOT,
        )
    marker.write_text(json.dumps({"days": days, "per_hour": per_hour}))
    return path


def port_of(url: str) -> str:
    return str(urllib.parse.urlsplit(url).port)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1, help="runs of each one-window variant")
    parser.add_argument("--latency", type=float, default=1.5, help="backfill: s each job runs")
    parser.add_argument("--days", type=int, default=30, help="backfill: days of hourly windows")
    parser.add_argument("--events-per-hour", type=int, default=20)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--skip-window", action="store_true")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "bqtui-bench"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return

    work = Path(tempfile.mkdtemp(prefix="bqtui-bench-stage-"))
    os.environ.setdefault("BQTUI_BQEMULATOR_VENV", str(ROOT / ".bqemu-venv"))
    from bqtui.demo.emulator import default_venv_dir, ensure_installed, start_emulator
    from tests.harness.clickhouse_http import ClickHouseHttpServer
    from tests.harness.cloud_storage import CloudStorage
    from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = work / "children.log"
    log(f"work in {work}; children's stderr in {log_file}")
    window_data = None if args.skip_window else chdb_dir(data_dir, args.rows)
    if window_data is not None:
        ensure_data(args.rows, data_dir, log_file, 16 * 1024)
    backfill_data = None
    if not args.skip_backfill:
        backfill_data = seed_backfill(data_dir, args.days, args.events_per_hour, log_file)
    gcs_root = work / "gcs"
    secret = base64.b64encode(os.urandom(30)).decode()  # 40 characters, as Google's
    secret_file = work / "hmac-secret"
    secret_file.write_text(secret + "\n")
    window_results: dict[tuple[str, str], list[dict]] = {}
    backfill_results: dict[tuple[str, str], dict] = {}
    sources = ["embedded"] + ([] if args.skip_http else ["HTTP"])
    with (
        start_emulator(
            ensure_installed(default_venv_dir()),
            log_file=work / "emulator.log",
            gcs_local_root=gcs_root,
            timeout=60,
        ) as emulator,
        FakeGoogle(emulator.url) as google,
        CloudStorage(gcs_root) as storage,
    ):
        storage.add_bucket(BUCKET)
        storage.register_key(HMAC_ID, secret)
        counter = StorageCounter(storage)
        google.add_project(PROJECT)
        admin = google.admin_client(PROJECT)
        admin.create_dataset(f"{PROJECT}.{DATASET}")
        account = google.new_account(
            PROJECT,
            "bench-stage",
            project_permissions=JOB_USER,
            dataset_permissions={DATASET: DATA_EDITOR},
        )
        key_file = account.write_key(work / "key.json")
        os.environ["BQTUI_GCS_ENDPOINT"] = storage.url  # the children inherit it
        os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
        peers = {
            port_of(storage.url): "cloud storage",
            port_of(google.api_endpoint): "bigquery",
            port_of(google.token_uri): "token",
        }
        number = 0

        def run(mode: str, path: str, source: str, dsn: str, server_port: str | None) -> dict:
            nonlocal number
            number += 1
            name = f"{mode}-{path}-{source.lower()}-{number}"
            child_work = work / name
            os.environ["XDG_DATA_HOME"] = str(child_work / "xdg-data")
            os.environ["XDG_CONFIG_HOME"] = str(child_work / "xdg-config")
            os.environ["BQTUI_DATA_DIR"] = str(child_work / "data")
            start, end, interval = (
                (WINDOW_START, WINDOW_END, "day")
                if mode == "window"
                else (BACKFILL_START, BACKFILL_START + timedelta(days=args.days), "hour")
            )
            spec = {
                "name": name,
                "mode": mode,
                "path": path,
                "dsn": dsn,
                "work_dir": str(child_work),
                "dataset": DATASET,
                "table": name.replace("-", "_"),
                "interval": interval,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "bigquery_endpoint": google.api_endpoint,
                "key_file": str(key_file),
                "bucket": BUCKET,
                "prefix": "exports",
                "hmac_secret_file": str(secret_file),
                "peers": {**peers, **({server_port: "clickhouse"} if server_port else {})},
            }
            google.proxy.set_job_latency(args.latency if mode == "backfill" else 0)
            google.proxy.reset_calls()
            counter.take()
            log(f"{name}: running")
            result = run_child(spec, log_file)
            result["storage"] = counter.take()
            result["jobs"] = len(google.proxy.calls_to("jobs.insert"))
            google.proxy.set_job_latency(0)
            table = f"{PROJECT}.{DATASET}.{spec['table']}"
            counted = admin.query(f"SELECT count(*) AS n FROM `{table}`").result()
            result["rows_in_bigquery"] = next(iter(counted))["n"]
            admin.delete_table(table, not_found_ok=True)  # keep the emulator small
            left = storage.objects(BUCKET)
            result["objects_left"] = len([n for n in left if ".bqtui-write-check-" not in n])
            log(
                f"  {result['seconds']:.1f} s, CPU {result['cpu_seconds']:.1f} s, "
                f"{result['rows_in_bigquery']:,} rows in BigQuery, {result['jobs']} jobs; "
                + ", ".join(f"{k} {v:.1f} s" for k, v in result["stages"].items())
                + f"; Cloud Storage stand-in busy {result['storage']['seconds']:.1f} s"
            )
            return result

        for source in sources:
            for mode, data in (("window", window_data), ("backfill", backfill_data)):
                if data is None:
                    continue
                with contextlib.ExitStack() as stack:
                    if source == "HTTP":
                        server = stack.enter_context(ClickHouseHttpServer(data))
                        dsn, server_port = server.dsn("default"), str(server.port)
                    else:
                        dsn, server_port = f"chdb://{data}", None
                    for path in PATHS:
                        if mode == "window":
                            window_results[(source, path)] = [
                                run(mode, path, source, dsn, server_port) for _ in range(args.runs)
                            ]
                        else:
                            backfill_results[(source, path)] = run(
                                mode, path, source, dsn, server_port
                            )
    (work / "results.json").write_text(
        json.dumps(
            {
                "window": {" ".join(k): v for k, v in window_results.items()},
                "backfill": {" ".join(k): v for k, v in backfill_results.items()},
            },
            indent=2,
        )
    )
    log(f"raw results in {work / 'results.json'}")
    if window_results:
        print_window(window_results, args)
    if backfill_results:
        print_backfill(backfill_results, args)


# -- the report --------------------------------------------------------------------------------


def _kb(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:,.1f} MB"
    return f"{value / 1e3:,.1f} kB"


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def print_window(results: dict[tuple[str, str], list[dict]], args) -> None:
    first = next(iter(results.values()))[0]
    print(
        f"\nOne day window of {first['rows']:,} events, one BigQuery load job each way "
        f"(medians of {args.runs} run(s), each in its own process):\n"
    )
    print(
        "| ClickHouse | path | rows in BigQuery | Parquet | via bqtui's sockets: ClickHouse "
        "| Cloud Storage | BigQuery + token | files read / written (rchar / wchar) "
        "| Cloud Storage in total (in / out) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (source, path), runs in results.items():
        r = runs[0]

        def both(peer, r=r):
            return f"{_kb(r['received'].get(peer, 0))} in / {_kb(r['sent'].get(peer, 0))} out"

        google = {
            way: r[way].get("bigquery", 0) + r[way].get("token", 0) for way in ("received", "sent")
        }
        where = "in bqtui's process" if source == "embedded" else "own process"
        print(
            f"| {source} ({where}) | {path} | {r['rows_in_bigquery']:,} "
            f"| {_kb(r['bytes'])} | {both('clickhouse') if source == 'HTTP' else '– (in-process)'} "
            f"| {both('cloud storage')} "
            f"| {_kb(google['received'])} in / {_kb(google['sent'])} out "
            f"| {_kb(r['io']['rchar'])} / {_kb(r['io']['wchar'])} "
            f"| {_kb(r['storage']['received'])} / {_kb(r['storage']['sent'])} |"
        )
    print(
        "\n| ClickHouse | path | wall s | bqtui CPU-s (user+sys) | peak RSS | RSS before "
        "| disk written (write_bytes) | objects in bucket | stage steps |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for (source, path), runs in results.items():
        print(
            f"| {source} | {path} | {_median(runs, 'seconds'):.1f} "
            f"| {_median(runs, 'cpu_seconds'):.2f} | {_median(runs, 'peak_rss_mb'):,.0f} MB "
            f"| {_median(runs, 'base_rss_mb'):,.0f} MB | {_kb(runs[0]['io']['write_bytes'])} "
            f"| {runs[0]['storage']['objects']} "
            f"| {', '.join(f'{k} {v:.2f} s' for k, v in runs[0]['stages'].items()) or '–'} |"
        )


def print_backfill(results: dict[tuple[str, str], dict], args) -> None:
    first = next(iter(results.values()))
    print(
        f"\nBackfill of {args.days * 24} hourly windows ({args.events_per_hour} events an hour, "
        f"{first['rows_in_bigquery']:,} rows), every BigQuery job RUNNING for "
        f"{args.latency} s:\n"
    )
    print(
        "| ClickHouse | path | wall s | jobs | bqtui CPU-s | peak RSS | Cloud Storage "
        "requests | objects written | bqtui's socket bytes (in / out) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (source, path), r in results.items():
        requests = sum(r["storage"]["requests"].values())
        print(
            f"| {source} | {path} | {r['seconds']:.1f} | {r['jobs']} | {r['cpu_seconds']:.1f} "
            f"| {r['peak_rss_mb']:,.0f} MB | {requests:,} | {r['storage']['objects']:,} "
            f"| {_kb(sum(r['received'].values()))} / {_kb(sum(r['sent'].values()))} |"
        )
    for (source, path), r in results.items():
        if path != "stage" or not r["windows"]:
            continue
        windows = r["windows"]
        steps = ", ".join(f"{k} {1000 * v / windows:.0f} ms" for k, v in r["stages"].items())
        requests = sum(r["storage"]["requests"].values()) / windows
        print(
            f"\nStage path, {source}, per window: {steps}; {requests:.1f} Cloud Storage "
            f"requests (the stand-in spent {1000 * r['storage']['seconds'] / windows:.0f} ms "
            "answering them)."
        )


if __name__ == "__main__":
    main()
