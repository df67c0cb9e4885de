"""Sessions of any length are exact: one minute to ten days, UUIDv7 ids and others, across
window and day boundaries, with late events that move a session's start earlier. The real CLI
exports them hourly in two phases (as time passes); after each, every field of every session
equals an independent oracle and `bqtui verify` exits 0."""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

from tests.faults.conftest import PROJECT, T0, World, iso
from tests.integration.test_mutable_exports import SESSION_COLUMNS, build_session

DAY = timedelta(days=1)
MIDWAY = T0 + 5 * DAY  # phase 1: what ClickHouse holds before this ingestion time
END = T0 + 11 * DAY


def uuid7(at: datetime, rng: random.Random) -> str:
    """A UUIDv7 whose first 48 bits are ``at`` in milliseconds, as PostHog's SDKs make them."""
    millis = int(at.timestamp() * 1000)
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64)
    value |= (0b10 << 62) | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def session_events(rng, session_id, start, span, *, every, distinct_id):
    """Events from ``start`` over ``span``: a pageview first, then pageviews and clicks."""
    events = []
    moments = [start + every * i for i in range(int(span / every) + 1)]
    if moments[-1] < start + span:
        moments.append(start + span)  # the session lasts exactly ``span``
    for n, moment in enumerate(moments):
        kind = "$pageview" if n % 3 == 0 else "$autocapture"
        properties = {
            "$session_id": session_id,
            "$current_url": f"https://shop.test/p{n}",
            "$pathname": f"/p{n}",
            "$host": "shop.test",
        }
        if n == 0:
            properties.update({"utm_source": "newsletter", "$referring_domain": "mail.test"})
        events.append(_event(rng, kind, properties, moment, distinct_id, moment))
    return events


def _event(rng, kind, properties, timestamp, distinct_id, ingested):
    return {
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event": kind,
        "properties": properties,
        "timestamp": timestamp,
        "distinct_id": distinct_id,
        # ingested a few seconds after it happened, unless the caller says otherwise
        "ingested": ingested + timedelta(seconds=rng.randint(1, 20)),
    }


def build_events() -> list[dict]:
    rng = random.Random(15)
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    plan = [  # (id kind, start, span, every)
        ("v7", T0 + 10 * hour + 59 * minute, minute, timedelta(seconds=20)),  # crosses an hour
        ("v7", T0 + 12 * hour, 23 * hour, 2 * hour),  # crosses midnight
        ("v7", T0 + DAY + 30 * minute, 3 * DAY, 5 * hour),
        ("v7", T0 + 5 * hour, 10 * DAY, 7 * hour),
        ("server", T0 + 2 * hour, 3 * DAY, 6 * hour),
        ("uuid4", T0 + 3 * hour, 10 * DAY, 9 * hour),
        ("server", T0 + 4 * DAY + 23 * hour + 59 * minute, minute, timedelta(seconds=15)),
    ]
    events, sessions = [], []
    for number, (kind, start, span, every) in enumerate(plan):
        if kind == "v7":
            session_id = uuid7(start, rng)
        elif kind == "uuid4":
            session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        else:
            session_id = f"server-session-{number}"  # a server SDK's own id
        sessions.append(session_id)
        events += session_events(
            rng, session_id, start, span, every=every, distinct_id=f"user{number}"
        )
    # Late events that move a session's start earlier, ingested on day 9: a client whose clock
    # ran two hours behind (UUIDv7 session), and imported history four days before (other id).
    for session_id, earlier in ((sessions[2], 2 * hour), (sessions[4], 4 * DAY)):
        first = min(e["timestamp"] for e in events if e["properties"]["$session_id"] == session_id)
        properties = {
            "$session_id": session_id,
            "$current_url": "https://shop.test/early",
            "$pathname": "/early",
            "$host": "shop.test",
            "utm_source": "late",
        }
        events.append(
            _event(rng, "$pageview", properties, first - earlier, "early-user", T0 + 9 * DAY)
        )
    return events


def insert(world: World, events: list[dict]) -> None:
    def text(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def quoted(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    values = ",\n".join(
        f"('{e['uuid']}', '{e['event']}', {quoted(json.dumps(e['properties']))}, "
        f"'{text(e['timestamp'])}', 1, '{e['distinct_id']}', '', '{text(e['timestamp'])}', "
        f"generateUUIDv4(), '{text(e['ingested'])}', '{e['ingested']:%Y-%m-%d %H:%M:%S}')"
        for e in events
    )
    world.chdb(
        "command",
        "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, "
        "elements_chain, created_at, person_id, inserted_at, _timestamp) VALUES " + values,
    )


def expected_sessions(events: list[dict]) -> dict[str, dict]:
    by_session: dict[str, list[dict]] = {}
    for event in events:
        by_session.setdefault(event["properties"]["$session_id"], []).append(event)
    return {
        sid: {**build_session(1, sid, evs), "max_inserted_at": max(e["ingested"] for e in evs)}
        for sid, evs in by_session.items()
    }


def assert_exact(world: World, events: list[dict]) -> None:
    expected = expected_sessions(events)
    rows = [
        dict(r)
        for r in world.google.admin_client(PROJECT)
        .query(f"SELECT * FROM `{PROJECT}.{world.dataset}.sessions`")
        .result()
    ]
    assert sorted(r["session_id"] for r in rows) == sorted(expected)
    for row in rows:
        want = expected[row["session_id"]]
        for column in sorted(SESSION_COLUMNS):
            assert row[column] == want[column], (row["session_id"], column)


def test_sessions_of_any_length_are_exact_and_verify_agrees(world: World):
    events = build_events()
    now_1, now_2 = MIDWAY + timedelta(minutes=5), END + timedelta(minutes=5)
    world.add("sess", model="sessions", table="sessions")

    phase_1 = [e for e in events if e["ingested"] < MIDWAY]
    insert(world, phase_1)
    first = world.bqtui("run", "sess", BQTUI_NOW=iso(now_1))
    assert first.code == 0, first.out + first.err
    assert_exact(world, phase_1)
    # Two of the sessions have ids that are not UUIDv7: the log says what that costs.
    assert "not UUIDv7" in first.out + first.err
    verified = world.bqtui("verify", "sess", BQTUI_NOW=iso(now_1))
    assert verified.code == 0, verified.out + verified.err

    insert(world, [e for e in events if e["ingested"] >= MIDWAY])
    second = world.bqtui("run", "sess", BQTUI_NOW=iso(now_2))
    assert second.code == 0, second.out + second.err
    assert_exact(world, events)
    verified = world.bqtui("verify", "sess", BQTUI_NOW=iso(now_2))
    assert verified.code == 0, verified.out + verified.err
    assert verified.out.splitlines()[-1].startswith("OK: BigQuery holds exactly")
    # `bqtui check` says what the ids cost: the last day holds the ten-day uuid4 session.
    checked = world.bqtui("check", "sess", BQTUI_NOW=iso(now_2))
    assert (
        "Note: sessions: 1 of 2 sessions of the team's last day have ids that are not UUIDv7"
        in checked.out
    ), checked.out + checked.err
    # The late events moved both sessions' starts earlier (two hours and four days).
    spans = {
        s["session_id"]: s["end_timestamp"] - s["start_timestamp"]
        for s in expected_sessions(events).values()
    }
    assert max(spans.values()) >= 10 * DAY and min(spans.values()) <= timedelta(minutes=1)
