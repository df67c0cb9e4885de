"""Demo data for the ClickHouse source tables (`events`, `person`, `person_distinct_id2`).

`generate` writes a small, realistic product-analytics dataset from Python: several teams, users
who browse anonymously and later identify, sessions with UTM and click ids, person version bumps,
merges and deletions, late, duplicated and legacy (NULL `inserted_at`) events, unicode
everywhere and a few malformed-but-possible property strings. Same seed and arguments give
byte-identical rows.

`generate_bulk_events` fills `events` with millions of rows inside ClickHouse, for benchmarks.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pyarrow as pa
from clickhouse_connect.driver.binding import quote_identifier

from bqtui.demo.catalog import (
    _ACQUISITION,
    _ACQUISITION_WEIGHTS,
    _APP_DEVICES,
    _CLICK_ID_ALPHABET,
    _CLICK_TARGETS,
    _CONTROL_CHARACTER_TEXT,
    _EMAIL_DOMAINS,
    _LOCALES,
    _LONG_TEXT,
    _NAMES,
    _SCREENS,
    _SEARCH_QUERIES,
    _SITES,
    _TRUNCATED_EMOJI_TITLE,
    _WEB_DEVICES,
    _Site,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SOURCE_DDL: dict[str, str] = {
    "events": """
CREATE TABLE IF NOT EXISTS {table} (
    uuid UUID,
    event String,
    properties String,              -- JSON object text; may hold $set, $set_once, $ip, $session_id,
                                    -- $current_url, $pathname, $host, $referring_domain, utm_* ...
    timestamp DateTime64(6, 'UTC'),
    team_id Int64,
    distinct_id String,
    elements_chain String,
    created_at DateTime64(6, 'UTC'),
    person_id UUID,
    inserted_at Nullable(DateTime64(6, 'UTC')),   -- when the row reached ClickHouse
    _timestamp DateTime                           -- ingestion time, second precision
) ENGINE = ReplacingMergeTree(_timestamp)
ORDER BY (team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))
""",
    "person": """
CREATE TABLE IF NOT EXISTS {table} (
    id UUID,
    created_at DateTime64(3, 'UTC'),
    team_id Int64,
    properties String,
    is_identified Int8,
    is_deleted Int8,
    version UInt64,
    _timestamp DateTime
) ENGINE = ReplacingMergeTree(version) ORDER BY (team_id, id)
""",
    "person_distinct_id2": """
CREATE TABLE IF NOT EXISTS {table} (
    team_id Int64,
    distinct_id String,
    person_id UUID,
    is_deleted Int8,
    version Int64,
    _timestamp DateTime
) ENGINE = ReplacingMergeTree(version) ORDER BY (team_id, distinct_id)
""",
}
"""CREATE TABLE statements of the source tables; `{table}` is the (qualified) table name."""


def qualified_table(table: str, database: str | None = None) -> str:
    """`table`, or `database`.`table` when a database is given, quoted for ClickHouse SQL."""
    if database is None:
        return quote_identifier(table)
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def create_source_tables(client: Client, database: str | None = None) -> None:
    """Create the source tables (and the database) unless they exist."""
    if database is not None:
        client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    for table, ddl in SOURCE_DDL.items():
        client.command(ddl.format(table=qualified_table(table, database)))


@dataclass(frozen=True)
class DemoSummary:
    """What `generate` wrote."""

    team_ids: tuple[int, ...]
    start: datetime
    end: datetime
    event_rows: int
    person_rows: int
    person_distinct_id_rows: int
    persons: int
    sessions: int


# A session never spans more than this, so sessions starting before `end - _MAX_SESSION_SPAN`
# are ingested before `end`.
_MAX_SESSION_SPAN = timedelta(minutes=45)
_SESSION_PAGE_BUDGET = timedelta(minutes=30)
_MIN_RANGE = timedelta(hours=1)

# Row versions and retried inserts must stay visible as separate rows, as they do in production
# where they arrive in different inserts; ClickHouse would otherwise collapse them per block.
_KEEP_ROW_VERSIONS = {"optimize_on_insert": 0}

# PostHog bumps versions by 100 when it deletes a person or a distinct-id mapping.
_DELETION_VERSION_BUMP = 100

_MICROS = pa.timestamp("us", tz="UTC")
_MILLIS = pa.timestamp("ms", tz="UTC")
_SECONDS = pa.timestamp("s", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class _Event:
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
class _Person:
    team_id: int
    id: str
    created_at: datetime
    properties: dict[str, Any]
    version: int = 0
    is_identified: bool = False
    updated_at: datetime = _EPOCH


@dataclass(frozen=True)
class _PersonRow:
    id: str
    created_at: datetime
    team_id: int
    properties: str
    is_identified: int
    is_deleted: int
    version: int
    written_at: datetime


@dataclass(frozen=True)
class _DistinctIdRow:
    team_id: int
    distinct_id: str
    person_id: str
    is_deleted: int
    version: int
    written_at: datetime


@dataclass
class _User:
    team_id: int
    site: _Site
    is_app: bool
    device: dict[str, Any]
    ip: str
    locale: tuple[str, str, str, str]
    name: str
    email: str
    distinct_id: str  # the one the SDK currently sends
    person: _Person | None = None
    distinct_ids: dict[str, int] = field(default_factory=dict)  # mapping versions
    purchases: int = 0
    lifetime_value: float = 0.0
    last_ingested_at: datetime = _EPOCH

    def current_person(self) -> _Person:
        """The user's person, which their first event creates."""
        if self.person is None:
            raise RuntimeError(f"user {self.distinct_id} has no person before their first event")
        return self.person


class _DemoWriter:
    """Simulates users and collects the rows they leave in the three tables."""

    def __init__(self, seed: int, start: datetime, end: datetime) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.end = end
        self.events: list[_Event] = []
        self.person_rows: list[_PersonRow] = []
        self.distinct_id_rows: list[_DistinctIdRow] = []
        self.sessions = 0
        self.persons = 0

    # -- users --------------------------------------------------------------------------

    def simulate_team(
        self, team_id: int, site: _Site, users: int, sessions_per_user: float
    ) -> None:
        emails: set[str] = set()
        latest_session_start = self.end - _MAX_SESSION_SPAN
        for _ in range(users):
            session_count = max(1, round(self.rng.expovariate(1 / sessions_per_user)))
            starts = sorted(
                self.time_between(self.start, latest_session_start) for _ in range(session_count)
            )
            user = self._new_user(team_id, site, emails, first_seen=starts[0])
            identify_in = self.rng.randrange(session_count) if self.rng.random() < 0.6 else None
            for index, session_start in enumerate(starts):
                self._simulate_session(user, session_start, identify=index == identify_in)
            if identify_in is not None and not user.is_app and self.rng.random() < 0.15:
                self._simulate_second_device(user, starts[-1], latest_session_start)
            if self.rng.random() < 0.04:
                self._delete_person(user)

    def _new_user(self, team_id: int, site: _Site, emails: set[str], first_seen: datetime) -> _User:
        rng = self.rng
        is_app = rng.random() < 0.2
        name = rng.choice(_NAMES)
        email = self._unique_email(name, emails)
        locale = rng.choice(_LOCALES)
        if is_app:
            device = self._app_device(site, locale)
            distinct_id = str(self.uuid4()).upper()  # iOS/Android SDKs send device ids
        else:
            device = self._web_device(locale)
            distinct_id = self.uuid7(first_seen)
        return _User(
            team_id=team_id,
            site=site,
            is_app=is_app,
            device=device,
            ip=self.ip(),
            locale=locale,
            name=name,
            email=email,
            distinct_id=distinct_id,
        )

    def _unique_email(self, name: str, taken: set[str]) -> str:
        local = name.lower().replace(" ", ".")
        domain = self.rng.choice(_EMAIL_DOMAINS)
        email = f"{local}@{domain}"
        number = 1
        while email in taken:
            number += 1
            email = f"{local}{number}@{domain}"
        taken.add(email)
        return email

    def _web_device(self, locale: tuple[str, str, str, str]) -> dict[str, Any]:
        os_name, os_version, browser, browser_version, device_type, width, height = self.rng.choice(
            _WEB_DEVICES
        )
        return {
            "$os": os_name,
            "$os_version": os_version,
            "$browser": browser,
            "$browser_version": browser_version,
            "$device_type": device_type,
            "$browser_language": locale[1],
            "$timezone": locale[0],
            "$screen_width": width,
            "$screen_height": height,
            "$viewport_width": width,
            "$viewport_height": height - self.rng.randint(80, 160),
            "$lib": "web",
            "$lib_version": "1.130.2",
        }

    def _app_device(self, site: _Site, locale: tuple[str, str, str, str]) -> dict[str, Any]:
        os_name, os_version, maker, model, lib, lib_version, width, height = self.rng.choice(
            _APP_DEVICES
        )
        return {
            "$os": os_name,
            "$os_version": os_version,
            "$device_type": "Mobile",
            "$device_manufacturer": maker,
            "$device_model": model,
            "$app_name": site.name,
            "$app_version": "2.3.1",
            "$app_build": "231",
            "$locale": locale[1],
            "$timezone": locale[0],
            "$screen_width": width,
            "$screen_height": height,
            "$network_wifi": self.rng.random() < 0.7,
            "$is_emulator": False,
            "$lib": lib,
            "$lib_version": lib_version,
        }

    # -- sessions -----------------------------------------------------------------------

    def _simulate_session(self, user: _User, session_start: datetime, *, identify: bool) -> None:
        session = _Session(self, user, session_start)
        if user.is_app:
            session.play_app(identify=identify)
        else:
            session.play_web(identify=identify)
        self.sessions += 1

    def _simulate_second_device(self, user: _User, after: datetime, latest: datetime) -> None:
        """The user logs in on a new browser: its anonymous person is merged and deleted."""
        if after + _MAX_SESSION_SPAN >= latest:
            return
        main_person = user.person
        user.device = self._web_device(user.locale)
        user.ip = self.ip()
        user.person = None
        session_start = self.time_between(after + _MAX_SESSION_SPAN, latest)
        user.distinct_id = self.uuid7(session_start)
        session = _Session(self, user, session_start)
        session.play_web(identify=True, merge_into=main_person)
        self.sessions += 1

    def _delete_person(self, user: _User) -> None:
        person = user.current_person()
        last_activity = max(person.updated_at, user.last_ingested_at)
        if last_activity + timedelta(seconds=2) >= self.end:
            return
        deleted_at = self.time_between(last_activity + timedelta(seconds=1), self.end)
        person.version += _DELETION_VERSION_BUMP
        self.person_rows.append(_person_row(person, deleted_at, is_deleted=True))
        for distinct_id, version in user.distinct_ids.items():
            self.map_distinct_id(
                user, distinct_id, person.id, version + _DELETION_VERSION_BUMP, deleted_at, True
            )

    # -- rows ---------------------------------------------------------------------------

    def create_person(self, user: _User, first: _Event, person_properties: dict) -> _Person:
        person = _Person(
            team_id=user.team_id,
            id=self.uuid7(first.timestamp),
            created_at=first.timestamp,
            properties=person_properties,
        )
        self.persons += 1
        self.write_person(person, first.ingested_at)
        return person

    def write_person(self, person: _Person, at: datetime) -> None:
        # A later version is never written before an earlier one.
        at = max(at, person.updated_at)
        person.updated_at = at
        self.person_rows.append(_person_row(person, at, is_deleted=False))

    def bump_person(self, person: _Person, at: datetime, **properties: Any) -> None:
        person.version += 1
        person.properties = {**person.properties, **properties}
        self.write_person(person, at)

    def map_distinct_id(
        self,
        user: _User,
        distinct_id: str,
        person_id: str,
        version: int,
        at: datetime,
        is_deleted: bool = False,
    ) -> None:
        user.distinct_ids[distinct_id] = version
        self.distinct_id_rows.append(
            _DistinctIdRow(user.team_id, distinct_id, person_id, int(is_deleted), version, at)
        )

    def add_quirks(self) -> None:
        """Malformed-but-possible strings, legacy rows and retried inserts, a few of each."""
        rng = self.rng
        few = max(3, len(self.events) // 2000)
        for event in rng.sample(self.events, few):
            event.properties["title"] = _TRUNCATED_EMOJI_TITLE
        for event in rng.sample(self.events, few):
            event.properties["$el_text"] = _CONTROL_CHARACTER_TEXT
            event.raw_value = _CONTROL_CHARACTER_TEXT
        for event in rng.sample(self.events, few):
            event.properties["description"] = _LONG_TEXT
        for event in self.events:
            event.has_inserted_at = rng.random() >= 0.02
        for event in rng.sample(self.events, max(3, len(self.events) // 300)):
            retried_at = event.ingested_at + timedelta(seconds=rng.uniform(1, 300))
            if retried_at < self.end:
                self.events.append(replace(event, ingested_at=retried_at))

    # -- randomness ---------------------------------------------------------------------

    def time_between(self, low: datetime, high: datetime) -> datetime:
        micros = (high - low) // timedelta(microseconds=1)
        return low + timedelta(microseconds=self.rng.randrange(max(1, micros)))

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def uuid7(self, at: datetime) -> str:
        """A UUIDv7 (time-ordered, as PostHog uses) with random bits from the seeded RNG."""
        millis = (at - _EPOCH) // timedelta(milliseconds=1)
        random_bits = self.rng.getrandbits(74)
        value = (
            (millis << 80)
            | (0x7 << 76)
            | ((random_bits >> 62) << 64)
            | (0b10 << 62)
            | (random_bits & ((1 << 62) - 1))
        )
        return str(uuid.UUID(int=value))

    def ip(self) -> str:
        rng = self.rng
        if rng.random() < 0.15:
            return "2001:db8:" + ":".join(f"{rng.getrandbits(16):x}" for _ in range(6))
        return ".".join(str(part) for part in (rng.randint(1, 223), *rng.choices(range(256), k=3)))

    def token(self, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.rng.choices(alphabet, k=length))


class _Session:
    """One visit: events with client timestamps and ingestion times, person updates on the way."""

    def __init__(self, writer: _DemoWriter, user: _User, started_at: datetime) -> None:
        rng = writer.rng
        self.writer = writer
        self.rng = rng
        self.user = user
        self.started_at = started_at
        self.id = writer.uuid7(started_at)
        self.window_id = writer.uuid7(started_at)
        # Offline apps and flaky networks deliver a session's events hours or days late, in one
        # burst starting at `started_at`.
        late_share = 0.15 if user.is_app else 0.03
        self.late_by = (
            timedelta(seconds=rng.uniform(3600, 3 * 86400)) if rng.random() < late_share else None
        )
        self.clock = started_at - (self.late_by or timedelta())
        self.events: list[_Event] = []
        self.current_url: str | None = None
        self.entry_properties: dict[str, Any] = {}

    def elapsed(self) -> timedelta:
        return self.clock + (self.late_by or timedelta()) - self.started_at

    # -- web --------------------------------------------------------------------------------

    def play_web(self, *, identify: bool, merge_into: _Person | None = None) -> None:
        rng = self.rng
        referrer, referring_domain, campaign = rng.choices(
            _ACQUISITION, weights=_ACQUISITION_WEIGHTS
        )[0]
        self.entry_properties = self._campaign_properties(campaign)
        is_bounce = rng.random() < 0.25
        page_count = 1 if is_bounce else min(8, 1 + int(rng.expovariate(1 / 2.5)))
        identify_on_page = rng.randrange(page_count) if identify else None
        pages = self.user.site.pages
        path = pages[0] if rng.random() < 0.5 else rng.choice(pages)
        for page_index in range(page_count):
            if page_index > 0:
                if self.elapsed() > _SESSION_PAGE_BUDGET:
                    break
                assert self.current_url is not None  # set by the previous page view
                referrer, referring_domain = self.current_url, self.user.site.host
                path = rng.choice(pages)
            self._pageview(path, referrer, referring_domain)
            if page_index == 0:
                self.entry_properties = {}
            if not is_bounce:
                self._browse_page(path)
            if page_index == identify_on_page:
                self._identify(merge_into)
            if page_index < page_count - 1 or rng.random() < 0.5:
                duration = {"$prev_pageview_duration": round(rng.uniform(2, 120), 1)}
                self._emit("$pageleave", self._page_properties(path) | duration, gap=(2, 40))

    def _campaign_properties(self, campaign: dict[str, str]) -> dict[str, str]:
        properties = dict(campaign)
        token = self.writer.token
        if "gclid" in properties:
            properties["gclid"] = "Cj0KCQjw" + token(40, _CLICK_ID_ALPHABET)
        if "fbclid" in properties:
            properties["fbclid"] = "IwAR" + token(50, _CLICK_ID_ALPHABET)
        if "msclkid" in properties:
            properties["msclkid"] = token(32, "0123456789abcdef")
        return properties

    def _pageview(self, path: str, referrer: str, referring_domain: str) -> None:
        query = "?" + urlencode(self.entry_properties) if self.entry_properties else ""
        if path in ("/search", "/suche"):
            query = "?" + urlencode({"q": self.rng.choice(_SEARCH_QUERIES)})
        properties = self._page_properties(path, query)
        properties |= {
            "$referrer": referrer,
            "$referring_domain": referring_domain,
            "title": f"{self.user.site.name} – {path}",
            **self.entry_properties,
        }
        self._emit("$pageview", properties, gap=(2, 40))
        self.current_url = properties["$current_url"]
        if self.rng.random() < 0.6:
            lcp = round(self.rng.lognormvariate(7.2, 0.5), 1)
            vitals = self._page_properties(path, query) | {
                "$web_vitals_LCP_value": lcp,
                "$web_vitals_FCP_value": round(lcp * self.rng.uniform(0.4, 0.9), 1),
                "$web_vitals_CLS_value": round(self.rng.uniform(0, 0.3), 4),
            }
            self._emit("$web_vitals", vitals, gap=(1, 6))

    def _browse_page(self, path: str) -> None:
        rng = self.rng
        for _ in range(rng.randint(0, 3)):
            text, element, href = rng.choice(_CLICK_TARGETS)
            properties = self._page_properties(path) | {"$event_type": "click", "$el_text": text}
            if href and href.startswith("https://"):
                properties["$external_click_url"] = href
            self._emit(
                "$autocapture",
                properties,
                gap=(1, 30),
                elements_chain=_elements_chain(element, text, href),
            )
        if path in ("/search", "/suche") or rng.random() < 0.05:
            query = rng.choice(_SEARCH_QUERIES)
            self._emit("search", self._page_properties(path) | {"search_query": query}, gap=(1, 10))
        if path in self.user.site.checkout_pages and rng.random() < 0.5:
            self._purchase(self._page_properties(path))
        elif rng.random() < 0.08:
            self._emit(
                "added_to_cart",
                self._page_properties(path) | {"quantity": rng.randint(1, 3)},
                gap=(1, 20),
            )

    def _page_properties(self, path: str, query: str = "") -> dict[str, Any]:
        host = self.user.site.host
        return {"$current_url": f"https://{host}{path}{query}", "$host": host, "$pathname": path}

    # -- app ----------------------------------------------------------------------------------

    def play_app(self, *, identify: bool) -> None:
        rng = self.rng
        self._emit("Application Opened", {"from_background": rng.random() < 0.4}, gap=(0, 1))
        screen_count = rng.randint(1, 8)
        identify_on_screen = rng.randrange(screen_count) if identify else None
        for screen_index in range(screen_count):
            if self.elapsed() > _SESSION_PAGE_BUDGET:
                break
            screen = rng.choice(_SCREENS)
            self._emit("$screen", {"$screen_name": screen}, gap=(2, 50))
            if screen == "Checkout" and rng.random() < 0.5:
                self._purchase({"$screen_name": screen})
            if screen_index == identify_on_screen:
                self._identify(None)
        self._emit("Application Backgrounded", {}, gap=(1, 30))

    # -- custom events and identity --------------------------------------------------------

    def _purchase(self, properties: dict[str, Any]) -> None:
        user = self.user
        amount = round(self.rng.uniform(4.99, 249.0), 2)
        user.purchases += 1
        user.lifetime_value = round(user.lifetime_value + amount, 2)
        person_update = {"lifetime_value": user.lifetime_value, "orders": user.purchases}
        properties = properties | {
            "amount": amount,
            "currency": self.rng.choice(("EUR", "USD", "JPY", "CHF")),
            "product": self.rng.choice(("Crème brûlée", "抹茶ラテ", "Ölsardinen", "Pro plan ✨")),
            "$set": person_update,
        }
        event = self._emit("purchase", properties, gap=(3, 40))
        self.writer.bump_person(user.current_person(), event.ingested_at, **person_update)

    def _identify(self, merge_into: _Person | None) -> None:
        """The user signs up, or logs in on a new device (`merge_into` their person)."""
        user, writer = self.user, self.writer
        anonymous_id = user.distinct_id
        anonymous_person = user.current_person()
        person = merge_into or anonymous_person
        plan = self.rng.choice(("free", "pro"))
        person_set = {"email": user.email, "name": user.name, "plan": plan}
        person_set_once = {
            "first_login_at": self.clock.isoformat(),
            "signup_source": user.site.host,
        }
        user.person = person
        user.distinct_id = user.email
        properties = {
            "$anon_distinct_id": anonymous_id,
            "$set": person_set,
            "$set_once": person_set_once,
        }
        at = self._emit("$identify", properties, gap=(1, 10)).ingested_at
        person.is_identified = True
        # $set_once keeps existing values; $set overwrites them.
        writer.bump_person(person, at, **(person_set_once | person.properties | person_set))
        if merge_into is None:
            writer.map_distinct_id(user, user.email, person.id, 0, at)
            self._emit("signed_up", {"plan": plan}, gap=(0, 2))
        else:
            writer.map_distinct_id(user, anonymous_id, person.id, 1, at)
            anonymous_person.version += _DELETION_VERSION_BUMP
            writer.person_rows.append(_person_row(anonymous_person, at, is_deleted=True))

    # -- emitting -----------------------------------------------------------------------------

    def _emit(
        self,
        name: str,
        properties: dict[str, Any],
        *,
        gap: tuple[float, float],
        elements_chain: str = "",
    ) -> _Event:
        rng, user, writer = self.rng, self.user, self.writer
        if self.events:
            self.clock += timedelta(seconds=rng.uniform(*gap))
        timestamp = self.clock
        if self.late_by is None:
            ingested_at = timestamp + timedelta(seconds=rng.uniform(0.05, 2.5))
        else:
            ingested_at = (
                self.started_at
                + timedelta(milliseconds=20 * len(self.events))
                + timedelta(seconds=rng.uniform(0.05, 1))
            )
        event = _Event(
            uuid=writer.uuid7(timestamp),
            event=name,
            properties={
                **user.device,
                **properties,
                "$session_id": self.id,
                "$window_id": self.window_id,
                "$ip": user.ip,
                "$insert_id": writer.token(16),
                "$time": round((timestamp - _EPOCH).total_seconds(), 3),
            },
            timestamp=timestamp,
            created_at=ingested_at - timedelta(milliseconds=rng.randint(5, 400)),
            ingested_at=ingested_at,
            team_id=user.team_id,
            distinct_id=user.distinct_id,
            person_id="",
            elements_chain=elements_chain,
        )
        if user.person is None:
            user.person = writer.create_person(user, event, self._initial_person_properties(event))
            writer.map_distinct_id(user, user.distinct_id, user.person.id, 0, ingested_at)
        event.person_id = user.person.id
        user.last_ingested_at = max(user.last_ingested_at, ingested_at)
        self.events.append(event)
        writer.events.append(event)
        return event

    def _initial_person_properties(self, first: _Event) -> dict[str, Any]:
        properties = first.properties
        initial = {
            f"$initial_{key[1:]}": properties[key]
            for key in (
                "$browser",
                "$os",
                "$device_type",
                "$current_url",
                "$pathname",
                "$referring_domain",
            )
            if key in properties
        }
        initial |= {f"$initial_{key}": value for key, value in self.entry_properties.items()}
        country, city = self.user.locale[2], self.user.locale[3]
        return initial | {"$geoip_country_name": country, "$geoip_city_name": city}


def _elements_chain(element: str, text: str, href: str | None) -> str:
    """PostHog's elements_chain: the clicked element, then its ancestors."""
    classes = element.partition(".")[2]
    attributes = f'attr__class="{classes.replace(".", " ")}"' if classes else ""
    if href:
        attributes += f'attr__href="{href}"href="{href}"'
    clicked = f'{element}:{attributes}nth-child="1"nth-of-type="1"text="{text}"'
    return ";".join(
        (
            clicked,
            'div.container:attr__class="container"nth-child="2"nth-of-type="1"',
            'body:nth-child="2"nth-of-type="1"',
        )
    )


def _person_row(person: _Person, at: datetime, *, is_deleted: bool) -> _PersonRow:
    return _PersonRow(
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


def _events_table(events: list[_Event]) -> pa.Table:
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


def _person_table(rows: list[_PersonRow]) -> pa.Table:
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


def _distinct_id_table(rows: list[_DistinctIdRow]) -> pa.Table:
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


def _insert_in_batches(
    client: Client, table: str, rows: pa.Table, database: str | None, batch_rows: int
) -> None:
    for offset in range(0, rows.num_rows, batch_rows):
        client.insert_arrow(
            table, rows.slice(offset, batch_rows), database=database, settings=_KEEP_ROW_VERSIONS
        )


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def generate(
    client: Client,
    *,
    start: datetime,
    end: datetime,
    seed: int = 42,
    team_ids: tuple[int, ...] = (1, 2, 3),
    users_per_team: int = 200,
    sessions_per_user: float = 3.0,
    database: str | None = None,
    batch_rows: int = 10_000,
) -> DemoSummary:
    """Write a realistic demo dataset, ingested over [start, end), into the source tables.

    Creates the tables if needed. Rows are a function of the arguments only: the same seed and
    arguments give identical rows, uuids included.
    """
    start, end = _as_utc(start), _as_utc(end)
    if end - start < _MIN_RANGE:
        raise ValueError(f"the demo time range must span at least {_MIN_RANGE}")
    writer = _DemoWriter(seed, start, end)
    for index, team_id in enumerate(team_ids):
        writer.simulate_team(
            team_id, _SITES[index % len(_SITES)], users_per_team, sessions_per_user
        )
    writer.add_quirks()
    # Insert in arrival order, as the ingestion pipeline would.
    events = sorted(writer.events, key=lambda event: event.ingested_at)
    person_rows = sorted(writer.person_rows, key=lambda row: row.written_at)
    distinct_id_rows = sorted(writer.distinct_id_rows, key=lambda row: row.written_at)

    create_source_tables(client, database)
    _insert_in_batches(client, "events", _events_table(events), database, batch_rows)
    _insert_in_batches(client, "person", _person_table(person_rows), database, batch_rows)
    _insert_in_batches(
        client, "person_distinct_id2", _distinct_id_table(distinct_id_rows), database, batch_rows
    )
    return DemoSummary(
        team_ids=tuple(team_ids),
        start=start,
        end=end,
        event_rows=len(events),
        person_rows=len(person_rows),
        person_distinct_id_rows=len(distinct_id_rows),
        persons=writer.persons,
        sessions=writer.sessions,
    )
