"""Persons and sessions, end to end: stage table → MERGE on versions → stage dropped."""

import json
import re
import string
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from bqtui.models.sessions import FIELDS as SESSION_FIELDS
from bqtui.source.clickhouse import ClickHouseSource
from tests.conftest import DEMO_END, DEMO_START
from tests.integration.conftest import PROJECT, add_export, run_cli


def aware(value):
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def backfill(db_path, name, start=DEMO_START, end=DEMO_END) -> int:
    return run_cli(
        "run", name, "--db", str(db_path), "--start", start.isoformat(), "--end", end.isoformat()
    )


def may_day(day: int) -> tuple[datetime, datetime]:
    start = datetime(2024, 5, day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def latest(rows, key, version):
    newest = {}
    for row in rows:
        k = key(row)
        if k not in newest or version(row) > version(newest[k]):
            newest[k] = row
    return newest


def source_persons(dsn, team_id=1) -> dict[str, dict]:
    """Every distinct_id's latest mapping and person, computed here in Python."""
    client = ClickHouseSource(dsn).client
    mappings = client.query(
        "SELECT distinct_id, toString(person_id), is_deleted, version FROM person_distinct_id2 "
        "WHERE team_id = {t:Int64}",
        parameters={"t": team_id},
    ).result_rows
    persons = client.query(
        "SELECT toString(id), properties, created_at, is_deleted, version FROM person "
        "WHERE team_id = {t:Int64}",
        parameters={"t": team_id},
    ).result_rows
    newest_mapping = latest(mappings, key=lambda r: r[0], version=lambda r: r[3])
    newest_person = latest(persons, key=lambda r: r[0], version=lambda r: r[4])
    expected = {}
    for distinct_id, person_id, mapping_deleted, mapping_version in newest_mapping.values():
        person = newest_person.get(person_id)
        expected[distinct_id] = {
            "team_id": team_id,
            "distinct_id": distinct_id,
            "person_id": person_id,
            "properties": person[1] if person else None,
            "person_version": person[4] if person else None,
            "person_distinct_id_version": mapping_version,
            "created_at": aware(person[2]) if person else None,
            "is_deleted": bool(mapping_deleted) or bool(person and person[3]),
        }
    return expected


def test_persons_match_the_latest_versions_in_the_source(db_path, destination, demo_dsn):
    add_export(db_path, destination, demo_dsn, name="people", table="persons", model="persons")
    assert backfill(db_path, "people") == 0

    expected = source_persons(demo_dsn)
    rows = destination.rows("persons", "distinct_id")
    assert len(rows) == len(expected) > 100
    assert {r["distinct_id"]: r for r in rows} == expected
    assert any(r["is_deleted"] for r in rows)
    assert not [t for t in destination.table_names() if "stage" in t]


def test_persons_update_only_when_versions_are_newer(db_path, destination, fresh_source):
    client = ClickHouseSource(fresh_source).client
    person = "11111111-1111-4111-8111-111111111111"

    def person_row(version, name, at):
        client.command(
            "INSERT INTO person (id, created_at, team_id, properties, is_identified, is_deleted,"
            f" version, _timestamp) VALUES ('{person}', '2024-05-01 09:00:00', 1,"
            f" '{json.dumps({'name': name})}', 1, 0, {version}, '{at}')"
        )

    client.command(
        "INSERT INTO person_distinct_id2 (team_id, distinct_id, person_id, is_deleted, version,"
        f" _timestamp) VALUES (1, 'ada@example.com', '{person}', 0, 0, '2024-05-01 09:00:00')"
    )
    person_row(1, "Ada", "2024-05-01 09:00:00")
    add_export(db_path, destination, fresh_source, name="people", table="persons", model="persons")
    assert backfill(db_path, "people", *may_day(1)) == 0
    assert [(r["properties"], r["person_version"]) for r in destination.rows("persons")] == [
        ('{"name": "Ada"}', 1)
    ]

    person_row(2, "Ada Lovelace", "2024-05-02 09:00:00")  # a version bump, a day later
    assert backfill(db_path, "people", *may_day(2)) == 0
    assert [(r["properties"], r["person_version"]) for r in destination.rows("persons")] == [
        ('{"name": "Ada Lovelace"}', 2)
    ]

    # The table holds a newer version than the source offers: re-running must not go back.
    table = f"`{PROJECT}.{destination.dataset}.persons`"
    destination.query(f"UPDATE {table} SET person_version = 5, properties = 'kept' WHERE TRUE")
    assert backfill(db_path, "people", *may_day(2)) == 0
    assert [(r["properties"], r["person_version"]) for r in destination.rows("persons")] == [
        ("kept", 5)
    ]

    # The person is deleted (a higher version with is_deleted) in a later window.
    client.command(
        "INSERT INTO person (id, created_at, team_id, properties, is_identified, is_deleted,"
        f" version, _timestamp) VALUES ('{person}', '2024-05-01 09:00:00', 1, '{{}}', 1, 1, 105,"
        " '2024-05-03 09:00:00')"
    )
    assert backfill(db_path, "people", *may_day(3)) == 0
    assert [(r["person_version"], r["is_deleted"]) for r in destination.rows("persons")] == [
        (105, True)
    ]


# PostHog's sessions, written out here from PostHog's definitions (sessions_v3 and its channel
# rules; README: Models), sharing no SQL with the product. The domain table is data: PostHog's,
# as bqtui ships it.
CHANNEL_DEFINITIONS = json.loads(
    (Path(__file__).resolve().parents[2] / "bqtui/models/channel_definitions.json").read_text(
        encoding="utf-8"
    )
)["definitions"]
PAID_TYPE = {(d, kind): paid for d, kind, _, paid, _ in CHANNEL_DEFINITIONS if paid}
ORGANIC_TYPE = {(d, kind): organic for d, kind, _, _, organic in CHANNEL_DEFINITIONS if organic}
# Enough of the public suffix list for the demo's domains: the last two labels are the
# registrable domain, the last three under these.
TWO_LABEL_SUFFIXES = {"co.uk", "com.au", "co.jp", "com.br", "com.cn", "co.kr", "github.io"}
VIEWS = ("$pageview", "$screen")
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def registrable_domain(host: str) -> str:
    labels = host.split(".")
    if len(labels) < 2 or not all(labels):
        return ""
    take = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-take:]) if len(labels) >= take else ""


def lookup(table: dict, name: str | None, kind: str, registrable: bool = True) -> str | None:
    """A name's type, else (sources) its registrable domain's, as PostHog's lookups."""
    name = name or ""
    found = table.get((name, kind))
    if found is None and registrable:
        found = table.get((registrable_domain(name), kind))
    return found


def channel_type(source, medium, campaign, referring_domain, has_gclid, has_fbclid, gad_source):
    """PostHog's default channel rules (channel_type.py), first match wins."""

    def absent_if_empty(value):
        return None if value in ("", "null") else value

    def lower(value):  # ClickHouse's lower(): ASCII letters only
        return value.translate(ASCII_LOWER) if value is not None else None

    source, medium, campaign = (lower(absent_if_empty(v)) for v in (source, medium, campaign))
    gad_source = absent_if_empty(gad_source)
    shopping = bool(campaign and re.search(r"(([^a-df-z]|^)shop|shopping)", campaign))
    video = bool(campaign and "video" in campaign)
    if campaign and "cross-network" in campaign:
        return "Cross Network"
    if (
        medium in ("cpc", "cpm", "cpv", "cpa", "ppc", "retargeting")
        or (medium or "").startswith("paid")
        or has_gclid
        or gad_source is not None
    ):
        for found in (
            lookup(PAID_TYPE, source, "source"),
            "Paid Shopping" if shopping else None,
            lookup(PAID_TYPE, medium, "medium", registrable=False),
            lookup(PAID_TYPE, referring_domain, "source"),
        ):
            if found:
                return found
        if gad_source == "1":
            return "Paid Search"
        if video:
            return "Paid Video"
        return "Paid Social" if has_fbclid else "Paid Unknown"
    if (
        referring_domain == "$direct"
        and medium is None
        and source in (None, "(direct)", "direct", "$direct")
        and not has_fbclid
    ):
        return "Direct"
    for found in (
        lookup(ORGANIC_TYPE, source, "source"),
        "Organic Shopping" if shopping else None,
        lookup(ORGANIC_TYPE, medium, "medium", registrable=False),
        lookup(ORGANIC_TYPE, referring_domain, "source"),
    ):
        if found:
            return found
    if video:
        return "Organic Video"
    if (medium or "").endswith("push"):
        return "Push"
    if has_fbclid:
        return "Organic Social"
    if referring_domain == "$direct":
        return "Direct"
    return "Referral" if referring_domain is not None else "Unknown"


def text_property(properties: dict, name: str) -> str | None:
    """A string property; absent, empty or not a string is None. Lone surrogates → U+FFFD."""
    value = properties.get(name)
    if not isinstance(value, str) or not value:
        return None
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


def raw_property(properties: dict, name: str) -> str | None:
    """A property as PostHog's sessions read it: text (other JSON values as their JSON text),
    None when absent or null; an empty string stays empty."""
    value = properties.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def lcp_value(properties: dict) -> float | None:
    """$web_vitals_LCP_value when it reads as a number (a JSON number or a numeric string)."""
    value = properties.get("$web_vitals_LCP_value")
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def url_host(url: str | None) -> str | None:
    """ClickHouse's domain() of a URL with a scheme: the host, without port, case kept."""
    if url is None:
        return None
    netloc = urlsplit(url).netloc
    return None if "@" in netloc else (netloc.split(":")[0] or None)


def url_path(url: str | None) -> str | None:
    return (urlsplit(url).path or None) if url is not None else None


def uuid_order(uuid: str) -> tuple[int, int]:
    """ClickHouse compares UUIDs by their last 8 bytes first: ties in time break that way."""
    digits = uuid.replace("-", "")
    return int(digits[16:], 16), int(digits[:16], 16)


def uuid7_time(session_id: str) -> datetime | None:
    """The instant in a UUIDv7 id (its first 48 bits, in ms); None for any other id."""
    if not re.fullmatch(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}",
        session_id,
    ):
        return None
    millis = int(session_id[:8] + session_id[9:13], 16)
    return datetime.fromtimestamp(millis / 1000, UTC)


def build_session(team_id: int, session_id: str, events: list[dict]) -> dict:
    """Every field of one session, from its events, by PostHog's definitions."""
    ordered = sorted(events, key=lambda e: (e["timestamp"], uuid_order(e["uuid"])))
    first, last = ordered[0], ordered[-1]
    # Entry attribution: $pageview/$screen events first; end URL: them last.
    views_first = [e for e in ordered if e["event"] in VIEWS] + [
        e for e in ordered if e["event"] not in VIEWS
    ]
    views_last = [e for e in ordered if e["event"] not in VIEWS] + [
        e for e in ordered if e["event"] in VIEWS
    ]

    def first_having(candidates, name):
        """The property of the first of ``candidates`` that has it; empty is None."""
        for e in candidates:
            value = raw_property(e["properties"], name)
            if value is not None:
                return value or None
        return None

    urls = []
    for e in ordered:
        url = raw_property(e["properties"], "$current_url")
        if e["event"] in VIEWS and url and url not in urls:
            urls.append(url)
    count = Counter(e["event"] for e in ordered)
    views = count["$pageview"] + count["$screen"]
    whole = timedelta(seconds=1)
    # Second boundaries crossed, as PostHog's dateDiff('second', start, end).
    duration = (
        last["timestamp"].replace(microsecond=0) - first["timestamp"].replace(microsecond=0)
    ) // whole
    lcp = [v for v in (lcp_value(e["properties"]) for e in ordered) if v is not None]
    entry_url = first_having(views_first, "$current_url")
    end_url = first_having(reversed(views_last), "$current_url")
    entry = views_first[0]["properties"]
    session = {
        "session_id": session_id,
        "team_id": team_id,
        "distinct_id": first["distinct_id"],
        "start_timestamp": first["timestamp"],
        "end_timestamp": last["timestamp"],
        "urls": urls,
        "num_uniq_urls": len(urls),
        "entry_current_url": entry_url,
        "entry_pathname": url_path(entry_url),
        "entry_hostname": url_host(entry_url),
        "end_current_url": end_url,
        "end_pathname": url_path(end_url),
        "end_hostname": url_host(end_url),
        "exit_current_url": end_url,
        "exit_pathname": url_path(end_url),
        **{
            f"entry_{name.lstrip('$')}": first_having(views_first, name)
            for name in (
                "utm_source",
                "utm_campaign",
                "utm_medium",
                "utm_term",
                "utm_content",
                "$referring_domain",
                "gclid",
                "fbclid",
                "gad_source",
            )
        },
        # PostHog's $entry_msclkid: the entry event's own.
        "entry_msclkid": raw_property(entry, "msclkid") or None,
        "pageview_count": count["$pageview"],
        "autocapture_count": count["$autocapture"],
        "screen_count": count["$screen"],
        "session_duration": duration,
        "duration": duration,
        # No $pageview or $screen: neither a bounce nor not one.
        "is_bounce": None
        if views == 0
        else (views == 1 and count["$autocapture"] == 0 and duration < 10),
        "last_external_click_url": first_having(reversed(ordered), "$external_click_url"),
        "vitals_lcp": lcp[0] if lcp else None,
        "session_id_time": uuid7_time(session_id),
        "channel_type": channel_type(
            raw_property(entry, "utm_source"),
            raw_property(entry, "utm_medium"),
            raw_property(entry, "utm_campaign"),
            raw_property(entry, "$referring_domain"),
            raw_property(entry, "gclid") is not None,
            raw_property(entry, "fbclid") is not None,
            raw_property(entry, "gad_source"),
        ),
    }
    return session


SESSION_COLUMNS = {
    "session_id",
    "team_id",
    "distinct_id",
    "start_timestamp",
    "end_timestamp",
    "urls",
    "num_uniq_urls",
    "entry_current_url",
    "entry_pathname",
    "entry_hostname",
    "end_current_url",
    "end_pathname",
    "end_hostname",
    "exit_current_url",
    "exit_pathname",
    "entry_utm_source",
    "entry_utm_campaign",
    "entry_utm_medium",
    "entry_utm_term",
    "entry_utm_content",
    "entry_referring_domain",
    "entry_gclid",
    "entry_fbclid",
    "entry_gad_source",
    "entry_msclkid",
    "pageview_count",
    "autocapture_count",
    "screen_count",
    "session_duration",
    "duration",
    "is_bounce",
    "channel_type",
    "last_external_click_url",
    "vitals_lcp",
    "session_id_time",
    "max_inserted_at",
}


def source_sessions(dsn, start=DEMO_START, end=DEMO_END, team_id=1) -> dict[str, dict]:
    """Sessions built in Python from the raw events: those whose last event was ingested
    in [start, end), each from all its events (deduplicated by uuid)."""
    client = ClickHouseSource(dsn).client
    rows = client.query(
        "SELECT toString(uuid), event, properties, timestamp, distinct_id, inserted_at, "
        "_timestamp FROM events WHERE team_id = {t:Int64}",
        parameters={"t": team_id},
    ).result_rows
    events = defaultdict(dict)
    last_ingested = {}
    for uuid, event, props, ts, distinct_id, inserted_at, ingested in rows:
        properties = json.loads(props, strict=False)
        session_id = text_property(properties, "$session_id")
        if session_id is None:
            continue
        arrived = aware(inserted_at) or aware(ingested)
        last_ingested[session_id] = max(arrived, last_ingested.get(session_id, arrived))
        events[session_id].setdefault(
            uuid,
            {
                "uuid": uuid,
                "event": event,
                "properties": properties,
                "timestamp": aware(ts),
                "distinct_id": distinct_id,
            },
        )
    return {
        session_id: {
            **build_session(team_id, session_id, list(by_uuid.values())),
            # when the newest of its events (any copy) was ingested
            "max_inserted_at": last_ingested[session_id],
        }
        for session_id, by_uuid in events.items()
        if start <= last_ingested[session_id] < end
    }


def test_sessions_match_the_source_events(db_path, destination, demo_dsn):
    add_export(db_path, destination, demo_dsn, name="visits", table="sessions", model="sessions")
    assert backfill(db_path, "visits") == 0

    expected = source_sessions(demo_dsn)
    assert {f.name for f in SESSION_FIELDS} == SESSION_COLUMNS
    rows = destination.rows("sessions", "session_id")
    assert len(rows) == len(expected) > 100
    for row in rows:
        want = expected[row["session_id"]]
        assert set(want) == set(row) == SESSION_COLUMNS
        for column in SESSION_COLUMNS:
            assert row[column] == want[column], (row["session_id"], column)
    # The demo data exercises the interesting cases.
    assert {r["channel_type"] for r in rows} >= {
        "Direct",
        "Paid Search",
        "Paid Social",
        "Paid Video",
        "Organic Search",
        "Organic Social",
        "Organic Video",
        "Email",
        "Referral",
        "Unknown",
    }
    assert {r["is_bounce"] for r in rows} >= {True, False}
    assert any(r["screen_count"] for r in rows) and any(r["vitals_lcp"] for r in rows)
    assert any(r["last_external_click_url"] for r in rows)
    assert any(r["exit_current_url"] is None for r in rows)


def insert_edge_session(dsn: str) -> None:
    """A session whose first event lacks UTM, click id and $pathname that later events carry,
    and whose last $screen has no URL."""
    client = ClickHouseSource(dsn).client
    url = "https://shop.example"
    events = (
        (
            "$pageview",
            "10:00:00",
            {"$current_url": url + "/a", "$host": "shop.example", "$referring_domain": "$direct"},
        ),
        (
            "$autocapture",
            "10:00:05",
            {
                "$current_url": url + "/a",
                "$pathname": "/a",
                "$host": "shop.example",
                "utm_source": "later",
                "gclid": "late-click",
                "$external_click_url": "https://ext.example/1",
            },
        ),
        (
            "$pageview",
            "10:00:07",
            {
                "$current_url": url + "/b",
                "$pathname": "/b",
                "$host": "shop.example",
                "$web_vitals_LCP_value": 1234.5,
            },
        ),
        ("$screen", "10:00:20", {"$screen_name": "Home"}),
        ("custom", "10:00:30.5", {"$external_click_url": "https://ext.example/2"}),
    )
    for n, (name, time, props) in enumerate(events, 1):
        client.command(
            "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id,"
            " elements_chain, created_at, person_id, inserted_at, _timestamp) VALUES"
            f" ('00000000-0000-4000-8000-0000000000{n:02d}', '{name}',"
            f" '{json.dumps({'$session_id': 'edge', **props})}', '2024-05-01 {time}', 1,"
            f" 'd{n}', '', '2024-05-01 {time}', generateUUIDv4(), '2024-05-01 11:00:00',"
            " '2024-05-01 11:00:00')"
        )


# What PostHog's sessions definition (README: Models) makes of the edge session, field by field.
EDGE_SESSION = {
    "session_id": "edge",
    "team_id": 1,
    "distinct_id": "d1",
    "start_timestamp": datetime(2024, 5, 1, 10, tzinfo=UTC),
    "end_timestamp": datetime(2024, 5, 1, 10, 0, 30, 500000, tzinfo=UTC),
    "urls": ["https://shop.example/a", "https://shop.example/b"],
    "num_uniq_urls": 2,
    # the first $pageview's URL; path and host are the URL's (it has no $pathname)
    "entry_current_url": "https://shop.example/a",
    "entry_pathname": "/a",
    "entry_hostname": "shop.example",
    # the last $pageview/$screen with a URL (the $screen has none): exit is end, as PostHog's
    "end_current_url": "https://shop.example/b",
    "end_pathname": "/b",
    "end_hostname": "shop.example",
    "exit_current_url": "https://shop.example/b",
    "exit_pathname": "/b",
    # each from the first $pageview/$screen that has it, else the first other event: no view
    # has a UTM or gclid, the $autocapture has
    "entry_utm_source": "later",
    "entry_utm_campaign": None,
    "entry_utm_medium": None,
    "entry_utm_term": None,
    "entry_utm_content": None,
    "entry_referring_domain": "$direct",
    "entry_gclid": "late-click",
    "entry_fbclid": None,
    "entry_gad_source": None,
    "entry_msclkid": None,
    # the channel is the entry $pageview's alone
    "pageview_count": 2,
    "autocapture_count": 1,
    "screen_count": 1,
    "session_duration": 30,
    "duration": 30,
    "is_bounce": False,
    "channel_type": "Direct",
    "last_external_click_url": "https://ext.example/2",
    "vitals_lcp": 1234.5,
    "session_id_time": None,
    "max_inserted_at": datetime(2024, 5, 1, 11, tzinfo=UTC),
}


def test_the_sessions_oracle_gives_the_spec_values_for_the_edge_session(fresh_source):
    insert_edge_session(fresh_source)
    assert source_sessions(fresh_source) == {"edge": EDGE_SESSION}


def test_entry_and_exit_fields_come_from_the_first_and_last_event(
    db_path, destination, fresh_source
):
    insert_edge_session(fresh_source)
    add_export(
        db_path, destination, fresh_source, name="visits", table="sessions", model="sessions"
    )
    assert backfill(db_path, "visits", *may_day(1)) == 0
    [row] = destination.rows("sessions")
    assert row == EDGE_SESSION


def test_a_session_that_grows_later_is_updated_not_duplicated(db_path, destination, fresh_source):
    client = ClickHouseSource(fresh_source).client

    def event(uuid, name, ts, arrived, url, extra=None):
        props = {
            "$session_id": "s1",
            "$current_url": url,
            "$pathname": url[18:] or "/",
            **(extra or {}),
        }
        client.command(
            "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id,"
            " elements_chain, created_at, person_id, inserted_at, _timestamp) VALUES"
            f" ('{uuid}', '{name}', '{json.dumps(props)}', '{ts}', 1, 'd1', '', '{ts}',"
            f" generateUUIDv4(), '{arrived}', '{arrived}')"
        )

    event(
        "00000000-0000-4000-8000-00000000000a",
        "$pageview",
        "2024-05-01 10:00:00",
        "2024-05-01 10:00:01",
        "https://example.com/",
        {"gclid": "abc", "$referring_domain": "www.google.com"},
    )
    add_export(
        db_path,
        destination,
        fresh_source,
        name="visits",
        table="sessions",
        model="sessions",
        interval="hour",
    )
    first_hour = (datetime(2024, 5, 1, 10, tzinfo=UTC), datetime(2024, 5, 1, 11, tzinfo=UTC))
    assert backfill(db_path, "visits", *first_hour) == 0
    [row] = destination.rows("sessions")
    assert (row["pageview_count"], row["is_bounce"], row["channel_type"]) == (
        1,
        True,
        "Paid Search",
    )

    event(
        "00000000-0000-4000-8000-00000000000b",
        "$pageview",
        "2024-05-01 11:00:30",
        "2024-05-01 11:00:31",
        "https://example.com/pricing",
    )
    assert backfill(db_path, "visits", first_hour[1], first_hour[1] + timedelta(hours=1)) == 0
    [row] = destination.rows("sessions")
    assert (row["pageview_count"], row["is_bounce"], row["duration"]) == (2, False, 3630)
    assert row["urls"] == ["https://example.com/", "https://example.com/pricing"]
    assert row["exit_current_url"] == "https://example.com/pricing"


def test_the_seeds_example_query_gives_the_same_counts_as_clickhouse(
    db_path, destination, demo_dsn
):
    add_export(db_path, destination, demo_dsn, name="ev", table="events")
    add_export(db_path, destination, demo_dsn, name="people", table="persons", model="persons")
    assert backfill(db_path, "ev") == 0
    assert backfill(db_path, "people") == 0

    in_bigquery = destination.query(
        f"SELECT e.event, COUNT(DISTINCT p.person_id) AS persons "
        f"FROM `{PROJECT}.{destination.dataset}.events` AS e "
        f"LEFT JOIN `{PROJECT}.{destination.dataset}.persons` AS p "
        f"ON e.distinct_id = p.distinct_id AND e.team_id = p.team_id "
        f"GROUP BY e.event ORDER BY e.event"
    )
    in_clickhouse = (
        ClickHouseSource(demo_dsn)
        .client.query(
            "SELECT e.event, uniqExact(m.person_id) FROM "
            "(SELECT event, distinct_id, team_id FROM events WHERE team_id = 1 LIMIT 1 BY uuid) AS e "
            "LEFT JOIN (SELECT team_id, distinct_id, argMax(person_id, version) AS person_id "
            "  FROM person_distinct_id2 WHERE team_id = 1 GROUP BY team_id, distinct_id) AS m "
            "ON e.distinct_id = m.distinct_id AND e.team_id = m.team_id "
            "GROUP BY e.event ORDER BY e.event SETTINGS join_use_nulls = 1"
        )
        .result_rows
    )
    assert [(r["event"], r["persons"]) for r in in_bigquery] == [tuple(r) for r in in_clickhouse]
    assert len(in_clickhouse) > 5
