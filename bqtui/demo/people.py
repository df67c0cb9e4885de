"""The demo's people: users of each team's site or app, who browse anonymously, sign up, log
in on a second device (merging persons) and are sometimes deleted; with the seeded randomness
everything else draws from. ``DemoWriter`` collects the rows they leave."""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bqtui.demo.catalog import (
    _APP_DEVICES,
    _CONTROL_CHARACTER_TEXT,
    _EMAIL_DOMAINS,
    _LOCALES,
    _LONG_TEXT,
    _NAMES,
    _TRUNCATED_EMOJI_TITLE,
    _WEB_DEVICES,
    _Site,
)
from bqtui.demo.rows import (
    DELETION_VERSION_BUMP,
    EPOCH,
    DistinctIdRow,
    Event,
    Person,
    PersonRow,
    User,
    person_row,
)
from bqtui.demo.visits import MAX_SESSION_SPAN, Session


class DemoWriter:
    """Simulates users and collects the rows they leave in the three tables."""

    def __init__(self, seed: int, start: datetime, end: datetime) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.end = end
        self.events: list[Event] = []
        self.person_rows: list[PersonRow] = []
        self.distinct_id_rows: list[DistinctIdRow] = []
        self.sessions = 0
        self.persons = 0

    # -- users --------------------------------------------------------------------------

    def simulate_team(
        self, team_id: int, site: _Site, users: int, sessions_per_user: float
    ) -> None:
        emails: set[str] = set()
        latest_session_start = self.end - MAX_SESSION_SPAN
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

    def _new_user(self, team_id: int, site: _Site, emails: set[str], first_seen: datetime) -> User:
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
        return User(
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

    def _simulate_session(self, user: User, session_start: datetime, *, identify: bool) -> None:
        session = Session(self, user, session_start)
        if user.is_app:
            session.play_app(identify=identify)
        else:
            session.play_web(identify=identify)
        self.sessions += 1

    def _simulate_second_device(self, user: User, after: datetime, latest: datetime) -> None:
        """The user logs in on a new browser: its anonymous person is merged and deleted."""
        if after + MAX_SESSION_SPAN >= latest:
            return
        main_person = user.person
        user.device = self._web_device(user.locale)
        user.ip = self.ip()
        user.person = None
        session_start = self.time_between(after + MAX_SESSION_SPAN, latest)
        user.distinct_id = self.uuid7(session_start)
        session = Session(self, user, session_start)
        session.play_web(identify=True, merge_into=main_person)
        self.sessions += 1

    def _delete_person(self, user: User) -> None:
        person = user.current_person()
        last_activity = max(person.updated_at, user.last_ingested_at)
        if last_activity + timedelta(seconds=2) >= self.end:
            return
        deleted_at = self.time_between(last_activity + timedelta(seconds=1), self.end)
        person.version += DELETION_VERSION_BUMP
        self.person_rows.append(person_row(person, deleted_at, is_deleted=True))
        for distinct_id, version in user.distinct_ids.items():
            self.map_distinct_id(
                user, distinct_id, person.id, version + DELETION_VERSION_BUMP, deleted_at, True
            )

    # -- rows ---------------------------------------------------------------------------

    def create_person(self, user: User, first: Event, person_properties: dict) -> Person:
        person = Person(
            team_id=user.team_id,
            id=self.uuid7(first.timestamp),
            created_at=first.timestamp,
            properties=person_properties,
        )
        self.persons += 1
        self.write_person(person, first.ingested_at)
        return person

    def write_person(self, person: Person, at: datetime) -> None:
        # A later version is never written before an earlier one.
        at = max(at, person.updated_at)
        person.updated_at = at
        self.person_rows.append(person_row(person, at, is_deleted=False))

    def bump_person(self, person: Person, at: datetime, **properties: Any) -> None:
        person.version += 1
        person.properties = {**person.properties, **properties}
        self.write_person(person, at)

    def map_distinct_id(
        self,
        user: User,
        distinct_id: str,
        person_id: str,
        version: int,
        at: datetime,
        is_deleted: bool = False,
    ) -> None:
        user.distinct_ids[distinct_id] = version
        self.distinct_id_rows.append(
            DistinctIdRow(user.team_id, distinct_id, person_id, int(is_deleted), version, at)
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
        millis = (at - EPOCH) // timedelta(milliseconds=1)
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
