#!/usr/bin/env python3
"""Rebuild bqtui/models/channel_definitions.json from a copy of PostHog's domain table.

PostHog publishes the table behind its channel types, MIT-licensed, as
``posthog/models/channel_type/channel_definitions.json`` in https://github.com/PostHog/posthog:
rows of ``[domain, kind, domain_type, type_if_paid, type_if_organic, is_app_id]``. PostHog loads
the first five columns into a ClickHouse dictionary keyed by ``(domain, kind)``; bqtui ships those
same five columns, with where they came from.

    scripts/build_channel_definitions.py PATH/TO/channel_definitions.json \\
        --commit 0ae3eb6ad6570c6ca89b5b643bac8512ece834a1 [--copied 2026-12-05]

The file names the commit the copy was taken at and the day it was copied. Check the rules in
``posthog/hogql/database/schema/channel_type.py`` at that commit against
``bqtui/models/channel_type.py`` when you update the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

REPOSITORY = "https://github.com/PostHog/posthog"
PATH = "posthog/models/channel_type/channel_definitions.json"
OUTPUT = Path(__file__).resolve().parent.parent / "bqtui" / "models" / "channel_definitions.json"
KINDS = ("source", "medium")
COLUMNS = ["domain", "kind", "domain_type", "type_if_paid", "type_if_organic"]


def build(rows: list, commit: str, copied: str) -> dict:
    seen: set[tuple[str, str]] = set()
    definitions = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 5:
            raise ValueError(f"not a channel definition row: {row!r}")
        domain, kind, *types = row[:5]
        if kind not in KINDS or not isinstance(domain, str):
            raise ValueError(f"unknown kind or domain in {row!r}")
        if any(t is not None and not isinstance(t, str) for t in types):
            raise ValueError(f"a type is not a string in {row!r}")
        if (domain, kind) in seen:  # PostHog's dictionary holds one row per (domain, kind)
            raise ValueError(f"({domain!r}, {kind!r}) appears twice")
        seen.add((domain, kind))
        definitions.append([domain, kind, *types])
    return {
        "origin": {
            "repository": REPOSITORY,
            "path": PATH,
            "commit": commit,
            "copied": copied,
            "license": "MIT (PostHog's published channel definitions)",
            "built_by": "scripts/build_channel_definitions.py",
        },
        "columns": COLUMNS,
        "definitions": definitions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a copy of PostHog's channel_definitions.json")
    parser.add_argument("--commit", required=True, help="the PostHog commit the copy is from")
    parser.add_argument(
        "--copied",
        default=datetime.now(UTC).date().isoformat(),
        help="the day the copy was taken (default: today)",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    rows = json.loads(args.source.read_text(encoding="utf-8"))
    table = build(rows, args.commit, args.copied)
    lines = [
        "{",
        f'  "origin": {json.dumps(table["origin"], ensure_ascii=False)},',
        f'  "columns": {json.dumps(table["columns"])},',
        '  "definitions": [',
        ",\n".join("    " + json.dumps(row, ensure_ascii=False) for row in table["definitions"]),
        "  ]",
        "}",
        "",
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"{len(table['definitions'])} definitions written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
