"""Commands that create, show, change and delete exports: add, list, show, pause, resume,
remove, set-key, set-source, set-stage."""

import argparse
import getpass
import json
import sys

from bqtui.cli.clock import now
from bqtui.cli.command import Command, add_json_option, add_name_argument, with_store
from bqtui.cli.commands.auth import add_credential_arguments, credential_choice
from bqtui.cli.commands.cost import add_cost_arguments, cost_summary, with_cost
from bqtui.cli.exit_codes import EXIT_OK
from bqtui.core.config import (
    DEFAULT_SETTLE_SECONDS,
    MODEL_DESCRIPTIONS,
    AuthKind,
    ExportConfig,
    parse_alert_after,
    parse_event_names,
    parse_interval,
    parse_model,
    parse_settle_seconds,
    parse_team_id,
    parse_timestamp,
    validate_export,
)
from bqtui.core.errors import ConfigError
from bqtui.core.paths import default_source_dsn
from bqtui.core.stage_uri import parse_hmac_id, parse_stage_uri
from bqtui.destination.keyfile import load_key_file
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.ops.export_setup import (
    NO_STAGE_SECRET,
    create_export,
    load_hmac_secret_file,
    remove_export,
    remove_export_stage,
    set_export_stage,
    typed_hmac_secret,
)
from bqtui.ops.status import alert_after
from bqtui.source.dsn import redact_dsn, split_secrets
from bqtui.state import secrets
from bqtui.state.store import Store, to_iso, utcnow
from bqtui.state.windows import first_window_start, next_run_at


def add_arguments_of_add(add: argparse.ArgumentParser) -> None:
    add.add_argument("--name", required=True, help="a short unique name for the export")
    add_credential_arguments(add)
    add.add_argument("--dataset-id", required=True, help="bare BigQuery dataset ID")
    add.add_argument("--table-id", required=True, help="bare BigQuery table ID")
    add.add_argument(
        "--model",
        default="events",
        help="; ".join(f"{m.value}: {d}" for m, d in MODEL_DESCRIPTIONS.items()),
    )
    add.add_argument(
        "--json-type",
        action="store_true",
        help="store properties, set and set_once as BigQuery JSON instead of STRING",
    )
    add.add_argument("--interval", default="hour", help="5m, hour, day or week (default hour)")
    add.add_argument(
        "--start",
        help="first window start (ISO 8601, UTC if no zone); default: the next period boundary",
    )
    add.add_argument("--team-id", default="1", help="the ClickHouse team_id to export")
    add.add_argument(
        "--settle",
        default=str(DEFAULT_SETTLE_SECONDS),
        metavar="SECONDS",
        help="export a window this long after it ends, so rows that become visible late are "
        f"in it (default {DEFAULT_SETTLE_SECONDS})",
    )
    add.add_argument(
        "--source-dsn",
        help="ClickHouse DSN, e.g. http://user:pass@host:8123/db (password goes to the "
        "keyring); default: the embedded ClickHouse",
    )
    add.add_argument(
        "--alert-after",
        metavar="SECONDS",
        help="bqtui status fails when the export is further behind than this (default: two "
        "intervals + the settle delay + 10 minutes)",
    )
    add.add_argument("--bigquery-endpoint", help="BigQuery API URL (emulators, private endpoints)")
    add.add_argument(
        "--project-id",
        help="BigQuery project (default: the key file's project, or the impersonated service "
        "account's)",
    )
    add.add_argument(
        "--location", help="BigQuery location of the dataset, e.g. US or EU (default: inferred)"
    )
    add_cost_arguments(add)
    add_stage_arguments(add)
    add.add_argument("--include-events", help="only these event names, comma-separated")
    add.add_argument("--exclude-events", help="all but these event names, comma-separated")


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stage",
        metavar="gs://BUCKET/PREFIX",
        help="ClickHouse writes Parquet here and BigQuery loads it (no rows through bqtui)",
    )
    parser.add_argument(
        "--stage-hmac-id",
        metavar="ID",
        help="access ID of the HMAC key ClickHouse writes the stage with",
    )
    parser.add_argument(
        "--stage-hmac-secret-file",
        metavar="PATH",
        help="file holding that HMAC key's secret (kept in the keyring); default: a prompt",
    )


def stage_hmac_key(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(access ID, secret) from the stage flags, or (None, None) when none is given.

    The secret is asked for last, once everything else is known to be valid."""
    hmac_id, secret_file = args.stage_hmac_id, args.stage_hmac_secret_file
    if hmac_id is None and secret_file is None:
        return None, None
    if not args.stage:
        raise ConfigError(
            "--stage-hmac-id and --stage-hmac-secret-file go with --stage gs://BUCKET/PREFIX; "
            "give --stage too, or leave them out."
        )
    if hmac_id is None:
        raise ConfigError(
            "--stage-hmac-secret-file needs --stage-hmac-id ID: a secret goes with its key's "
            "access ID."
        )
    hmac_id = parse_hmac_id(hmac_id)
    if secret_file is not None:
        return hmac_id, load_hmac_secret_file(secret_file)
    if not sys.stdin.isatty():
        raise ConfigError(NO_STAGE_SECRET)
    try:
        typed = getpass.getpass(f"Secret of the HMAC key {hmac_id} (not shown): ")
    except EOFError:
        typed = ""
    return hmac_id, typed_hmac_secret(typed)


def cmd_add(args: argparse.Namespace, store: Store) -> int:
    credentials = credential_choice(args)
    source_dsn, source_secrets = split_secrets(args.source_dsn or default_source_dsn())
    interval = parse_interval(args.interval)
    start = parse_timestamp(args.start, "start") if args.start else None
    config = ExportConfig(
        name=args.name,
        dataset_id=args.dataset_id,
        table_id=args.table_id,
        model=parse_model(args.model),
        interval=interval,
        json_type=args.json_type,
        team_id=parse_team_id(args.team_id),
        settle_seconds=parse_settle_seconds(args.settle),
        alert_after_seconds=parse_alert_after(args.alert_after),
        source_dsn=source_dsn,
        bigquery_endpoint=args.bigquery_endpoint,
        project_id=args.project_id or None,
        location=args.location or None,
        include_events=parse_event_names(args.include_events),
        exclude_events=parse_event_names(args.exclude_events),
        start_at=first_window_start(utcnow(), interval, start),
        stage=args.stage,
        stage_hmac_id=args.stage_hmac_id,
    )
    config = with_cost(config, args)
    validate_export(credentials.configured(config))  # before a secret is asked for
    hmac_id, hmac_secret = stage_hmac_key(args)
    export = create_export(
        store, config.with_changes(stage_hmac_id=hmac_id), credentials, source_secrets, hmac_secret
    )
    project = export.project_id or credentials.default_project
    print(
        f'Added export "{export.name}": {export.model} from team {export.team_id} to '
        f"{project + '.' if project else ''}{export.destination_label}, every "
        f"{export.interval}, first window from {export.start_at:%Y-%m-%d %H:%M} UTC."
    )
    print(credentials.summary)
    if export.stage:
        print(f"Stage {export.stage}, HMAC key {export.stage_hmac_id} (secret in the keyring).")
    print(f"Check permissions with: bqtui check {export.name}")
    return EXIT_OK


def export_summary(store: Store, export: ExportConfig) -> dict:
    """An export's settings and state, as `list --json` and `show --json` print them."""
    last = store.last_run(export.saved_id)
    done = store.done_window_starts(export.saved_id)
    return {
        "name": export.name,
        "model": export.model.value,
        "dataset_id": export.dataset_id,
        "table_id": export.table_id,
        "project_id": export.project_id,
        "auth": export.auth.value,
        "impersonate": export.impersonate,
        **cost_summary(export),
        "location": export.location,
        "interval": export.interval.value,
        "json_type": export.json_type,
        "team_id": export.team_id,
        "source_dsn": redact_dsn(export.source_dsn),
        "stage": export.stage,
        "stage_hmac_id": export.stage_hmac_id,
        "bigquery_endpoint": export.bigquery_endpoint,
        "include_events": list(export.include_events),
        "exclude_events": list(export.exclude_events),
        "start_at": to_iso(export.start_at),
        "settle_seconds": export.settle_seconds,
        "alert_after_seconds": round(alert_after(export).total_seconds()),
        "enabled": export.enabled,
        "windows_done": len(done),
        "last_run": None
        if last is None
        else {
            "status": last.status,
            "rows": last.rows,
            "windows_done": last.windows_done,
            "started_at": to_iso(last.started_at),
            "finished_at": to_iso(last.finished_at),
            "error": last.error,
        },
        "next_run_at": to_iso(next_run_at(export, now(), done)) if export.enabled else None,
    }


def cmd_list(args: argparse.Namespace, store: Store) -> int:
    summaries = [export_summary(store, e) for e in store.list_exports()]
    if args.json:
        print(json.dumps(summaries, indent=2))
        return EXIT_OK
    if not summaries:
        print("No exports yet. Create one with: bqtui add --help (or run bqtui for the wizard).")
        return EXIT_OK
    header = f"{'NAME':<20} {'MODEL':<9} {'DESTINATION':<32} {'EVERY':<5} {'STATE':<7} LAST RUN"
    print(header)
    for s in summaries:
        last = s["last_run"]
        last_text = (
            f"{last['status']} {last['rows']:,} rows {last['started_at'][:16]}" if last else "never"
        )
        print(
            f"{s['name']:<20} {s['model']:<9} {s['dataset_id'] + '.' + s['table_id']:<32} "
            f"{s['interval']:<5} {'enabled' if s['enabled'] else 'paused':<7} {last_text}"
        )
    return EXIT_OK


def cmd_show(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    summary = export_summary(store, export)
    runs = store.list_runs(export.id, limit=10)
    summary["runs"] = [
        {
            "id": r.id,
            "trigger": r.trigger,
            "status": r.status,
            "started_at": to_iso(r.started_at),
            "finished_at": to_iso(r.finished_at),
            "windows": f"{r.windows_done}/{r.windows_total}",
            "rows": r.rows,
            "bytes": r.bytes,
            "error": r.error,
        }
        for r in runs
    ]
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    for key, value in summary.items():
        if key not in ("runs", "last_run"):
            print(f"{key:<18} {value}")
    print("recent runs:")
    for run in summary["runs"] or [{"status": "none yet"}]:
        print("  " + "  ".join(f"{k}={v}" for k, v in run.items() if v is not None))
    return EXIT_OK


def cmd_pause_resume(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    enabled = args.command == "resume"
    store.set_enabled(export.saved_id, enabled)
    print(f'Export "{export.name}" {"resumed" if enabled else "paused"}.')
    return EXIT_OK


def add_arguments_of_remove(remove: argparse.ArgumentParser) -> None:
    remove.add_argument("name")
    remove.add_argument(
        "--force",
        action="store_true",
        help="if the export is running, stop that run at its next safe point first",
    )


def cmd_remove(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    note = remove_export(store, export, force=args.force)
    print(f'Removed export "{export.name}" and its keyring entries. BigQuery data is untouched.')
    if note:
        print(note)
    return EXIT_OK


def add_arguments_of_set_source(set_source: argparse.ArgumentParser) -> None:
    set_source.add_argument("name")
    set_source.add_argument("--source-dsn", required=True)


def cmd_set_source(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    source_dsn, source_secrets = split_secrets(args.source_dsn)
    secrets.store_clickhouse_secrets(export.uid, source_secrets)
    store.update_export(export.with_changes(source_dsn=source_dsn))
    stored = " (credentials → keyring)" if source_secrets else ""
    print(f'Export "{export.name}" now reads from {source_dsn}{stored}.')
    return EXIT_OK


def add_arguments_of_set_key(set_key: argparse.ArgumentParser) -> None:
    set_key.add_argument("name")
    set_key.add_argument("--key-file", required=True)


def cmd_set_key(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    key = load_key_file(args.key_file)
    # A key export again if it was not one (same as set-auth --key-file, impersonation kept).
    choice = CredentialChoice(AuthKind.KEY, key=key, impersonate=export.impersonate)
    choice.store_secrets(export.uid)
    store.update_export(choice.configured(export))
    print(f'Key for {key.client_email} stored for export "{export.name}".')
    return EXIT_OK


def add_arguments_of_set_stage(set_stage: argparse.ArgumentParser) -> None:
    set_stage.add_argument("name")
    add_stage_arguments(set_stage)
    set_stage.add_argument(
        "--no-stage",
        action="store_true",
        help="no stage: rows pass through bqtui again (the HMAC secret leaves the keyring)",
    )


def cmd_set_stage(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    if args.no_stage:
        if args.stage or args.stage_hmac_id is not None or args.stage_hmac_secret_file:
            raise ConfigError(
                "Give --stage gs://BUCKET/PREFIX or --no-stage, not both (--no-stage takes no "
                "HMAC key)."
            )
        remove_export_stage(store, export)
        print(f'Export "{export.name}" has no stage: its rows pass through bqtui to BigQuery.')
        return EXIT_OK
    if not args.stage:
        raise ConfigError(
            "bqtui set-stage needs --stage gs://BUCKET/PREFIX (with --stage-hmac-id ID for a "
            "new HMAC key) or --no-stage."
        )
    stage = parse_stage_uri(args.stage)
    hmac_id, hmac_secret = stage_hmac_key(args)
    changed = set_export_stage(store, export, stage, hmac_id, hmac_secret)
    key = "new HMAC key" if hmac_id else "HMAC key kept"
    print(
        f'Export "{export.name}" stages through {changed.stage} ({key} '
        f"{changed.stage_hmac_id}, secret in the keyring)."
    )
    return EXIT_OK


def add_arguments_of_show(show: argparse.ArgumentParser) -> None:
    show.add_argument("name")
    add_json_option(show)


COMMANDS = (
    Command("add", "create an export", add_arguments_of_add, with_store(cmd_add)),
    Command("list", "list exports", add_json_option, with_store(cmd_list)),
    Command(
        "show", "show an export and its recent runs", add_arguments_of_show, with_store(cmd_show)
    ),
    Command("pause", "stop scheduling an export", add_name_argument, with_store(cmd_pause_resume)),
    Command(
        "resume",
        "schedule a paused export again",
        add_name_argument,
        with_store(cmd_pause_resume),
    ),
    Command(
        "remove",
        "delete an export, its history and its keyring entries",
        add_arguments_of_remove,
        with_store(cmd_remove),
    ),
    Command(
        "set-key", "replace an export's key", add_arguments_of_set_key, with_store(cmd_set_key)
    ),
    Command(
        "set-source",
        "replace an export's ClickHouse DSN (its credentials go to the keyring)",
        add_arguments_of_set_source,
        with_store(cmd_set_source),
    ),
    Command(
        "set-stage",
        "write through a Cloud Storage stage (gs://BUCKET/PREFIX, HMAC key) or --no-stage",
        add_arguments_of_set_stage,
        with_store(cmd_set_stage),
    ),
)
