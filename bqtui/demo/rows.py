"""The demo's rows: what the simulation records (events, persons, distinct-id mappings), and
the same rows as Arrow tables in the source tables' column types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from bqtui.demo.catalog import _Site

# PostHog bumps versions by 100 when it deletes a person or a distinct-id mapping.
DELETION_VERSION_BUMP = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MICROS = pa.timestamp("us", tz="UTC")
_MILLIS = pa.timestamp("ms", tz="UTC")
_SECONDS = pa.timestamp("s", tz="UTC")


@dataclass
class Event:
    uuid: str
    event: str
    properties: dict[str, Any]
    timestamp: datetime
    created_at: datetime
    ingested_at: datetime
    team_id: int
    distinct_id: str
    person_id: str
    elements_chain: str = ""
    # Rows written before ClickHouse had `inserted_at` have NULL there.
    has_inserted_at: bool = True
    # A value that goes into the JSON text unescaped (invalid JSON some SDKs send).
    raw_value: str | None = None


@dataclass
class Person:
    team_id: int
    id: str
    created_at: datetime
    properties: dict[str, Any]
    version: int = 0
    is_identified: bool = False
    updated_at: datetime = EPOCH


@dataclass(frozen=True)
class PersonRow:
    id: str
    created_at: datetime
    team_id: int
    properties: str
    is_identified: int
    is_deleted: int
    version: int
    written_at: datetime


@dataclass(frozen=True)
class DistinctIdRow:
    team_id: int
    distinct_id: str
    person_id: str
    is_deleted: int
    version: int
    written_at: datetime


@dataclass
class User:
    team_id: int
    site: _Site
    is_app: bool
    device: dict[str, Any]
    ip: str
    locale: tuple[str, str, str, str]
    name: str
    email: str
    distinct_id: str  # the one the SDK currently sends
    person: Person | None = None
    distinct_ids: dict[str, int] = field(default_factory=dict)  # mapping versions
    purchases: int = 0
    lifetime_value: float = 0.0
    last_ingested_at: datetime = EPOCH

    def current_person(self) -> Person:
        """The user's person, which their first event creates."""
        if self.person is None:
            raise RuntimeError(f"user {self.distinct_id} has no person before their first event")
        return self.person


def person_row(person: Person, at: datetime, *, is_deleted: bool) -> PersonRow:
    return PersonRow(
        id=person.id,
        created_at=person.created_at,
        team_id=person.team_id,
        properties="{}" if is_deleted else _json(person.properties),
        is_identified=int(person.is_identified),
        is_deleted=int(is_deleted),
        version=person.version,
        written_at=at,
    )


def _json(value: dict[str, Any], raw_value: str | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if raw_value is not None:
        text = text.replace(json.dumps(raw_value, ensure_ascii=False), f'"{raw_value}"')
    # A lone surrogate cannot be written as UTF-8; it stays the `\ud83d` escape the SDK sent.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _whole_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def events_table(events: list[Event]) -> pa.Table:
    return pa.table(
        {
            "uuid": pa.array([e.uuid for e in events], pa.string()),
            "event": pa.array([e.event for e in events], pa.string()),
            "properties": pa.array([_json(e.properties, e.raw_value) for e in events], pa.string()),
            "timestamp": pa.array([e.timestamp for e in events], _MICROS),
            "team_id": pa.array([e.team_id for e in events], pa.int64()),
            "distinct_id": pa.array([e.distinct_id for e in events], pa.string()),
            "elements_chain": pa.array([e.elements_chain for e in events], pa.string()),
            "created_at": pa.array([e.created_at for e in events], _MICROS),
            "person_id": pa.array([e.person_id for e in events], pa.string()),
            "inserted_at": pa.array(
                [e.ingested_at if e.has_inserted_at else None for e in events], _MICROS
            ),
            "_timestamp": pa.array([_whole_seconds(e.ingested_at) for e in events], _SECONDS),
        }
    )


def person_table(rows: list[PersonRow]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array([r.id for r in rows], pa.string()),
            "created_at": pa.array([_whole_millis(r.created_at) for r in rows], _MILLIS),
            "team_id": pa.array([r.team_id for r in rows], pa.int64()),
            "properties": pa.array([r.properties for r in rows], pa.string()),
            "is_identified": pa.array([r.is_identified for r in rows], pa.int8()),
            "is_deleted": pa.array([r.is_deleted for r in rows], pa.int8()),
            "version": pa.array([r.version for r in rows], pa.uint64()),
            "_timestamp": pa.array([_whole_seconds(r.written_at) for r in rows], _SECONDS),
        }
    )


def distinct_id_table(rows: list[DistinctIdRow]) -> pa.Table:
    return pa.table(
        {
            "team_id": pa.array([r.team_id for r in rows], pa.int64()),
            "distinct_id": pa.array([r.distinct_id for r in rows], pa.string()),
            "person_id": pa.array([r.person_id for r in rows], pa.string()),
            "is_deleted": pa.array([r.is_deleted for r in rows], pa.int8()),
            "version": pa.array([r.version for r in rows], pa.int64()),
            "_timestamp": pa.array([_whole_seconds(r.written_at) for r in rows], _SECONDS),
        }
    )
