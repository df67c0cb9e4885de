"""Bulk events for benchmarks: millions of realistic rows computed inside ClickHouse.

Not part of the product: the demo's own data is `bqtui.demo.data.generate`. Shares the demo's
sites, screens and locales so bulk rows look like demo rows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bqtui.demo.catalog import _LOCALES, _SCREENS, _SITES
from bqtui.demo.data import _as_utc, create_source_tables, qualified_table
from bqtui.demo.rows import EPOCH

if TYPE_CHECKING:
    from datetime import datetime

    from clickhouse_connect.driver.client import Client


_BULK_EVENTS_PER_SESSION = 12
_BULK_EVENTS_PER_USER = 25
_BULK_STEP = timedelta(seconds=20)


def _sql_uuid7(millis_hex: str, random_hex: str) -> str:
    """UUIDv7 text from SQL expressions of 12 hex digits of milliseconds and 32 random ones."""
    return (
        f"concat(substring({millis_hex}, 1, 8), '-', substring({millis_hex}, 9, 4), '-7', "
        f"substring({random_hex}, 1, 3), '-8', substring({random_hex}, 4, 3), '-', "
        f"substring({random_hex}, 7, 12))"
    )


def _sql_random_hex(*key: str) -> str:
    """32 hex digits from two hashes of the seed and `key` (SQL expressions)."""
    parts = ", ".join(key)
    return (
        f"lower(hex(concat(reinterpretAsFixedString(cityHash64(seed, {parts}, 1)), "
        f"reinterpretAsFixedString(cityHash64(seed, {parts}, 2)))))"
    )


def _sql_millis_hex(moment: str) -> str:
    return f"leftPad(lower(hex(toUnixTimestamp64Milli({moment}))), 12, '0')"


def _sql_string_array(options: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + option.replace("'", "\\'") + "'" for option in options) + "]"


def _sql_pick(options: tuple[str, ...], hash_expression: str) -> str:
    """One of `options` (strings), chosen by a hash."""
    return f"{_sql_string_array(options)}[1 + {hash_expression} % {len(options)}]"


# Event names by frequency: a name repeated k times is picked k times as often.
_WEB_EVENT_MIX = (
    ("$pageview",) * 10
    + ("$autocapture",) * 12
    + ("$pageleave",) * 6
    + ("$web_vitals",) * 4
    + ("search", "search", "added_to_cart", "added_to_cart", "purchase", "signed_up")
)
_APP_EVENT_MIX = ("$screen",) * 8 + ("purchase", "Application Backgrounded")


def _bulk_insert_sql() -> str:
    """INSERT ... SELECT of one batch of bulk events into `{table}`.

    Server-side parameters: seed, team_id, users, start_us, session_start_span_us, offset, rows.
    Every value is a hash of (seed, row number): consecutive rows form sessions of one user.
    """
    step_us = _BULK_STEP // timedelta(microseconds=1)
    start = "fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')"
    app_event = _sql_pick(_APP_EVENT_MIX, "intDiv(event_hash, 3)")
    web_event = _sql_pick(_WEB_EVENT_MIX, "intDiv(event_hash, 3)")
    hosts = _sql_string_array(tuple(site.host for site in _SITES))
    pages = "[" + ", ".join(_sql_string_array(site.pages) for site in _SITES) + "]"
    referring_domain = _sql_pick(
        ("$direct", "www.google.com", "duckduckgo.com", "t.co", "l.facebook.com"),
        "intDiv(session_hash, 13)",
    )
    session_id = _sql_uuid7(
        _sql_millis_hex("session_start"), _sql_random_hex("'session-id'", "session_number")
    )
    event_uuid = _sql_uuid7(_sql_millis_hex("event_time"), _sql_random_hex("'uuid'", "number"))
    person_uuid = _sql_uuid7(_sql_millis_hex(start), _sql_random_hex("'person'", "user_number"))
    device_id = _sql_uuid7(_sql_millis_hex(start), _sql_random_hex("'device'", "user_number"))
    clicked_text = _sql_pick(
        ("Jetzt kaufen 🛒", "カートに追加", "Pricing", "Read more →", "GitHub"),
        "intDiv(event_hash, 11)",
    )
    screen = _sql_pick(_SCREENS, "intDiv(event_hash, 17)")
    web_os = _sql_pick(("Mac OS X", "Windows", "Linux"), "user_hash")
    browser = _sql_pick(("Chrome", "Firefox", "Safari", "Edge"), "intDiv(user_hash, 3)")
    timezone = _sql_pick(tuple(locale[0] for locale in _LOCALES), "intDiv(user_hash, 19)")
    gclid = "substring(" + _sql_random_hex("'gclid'", "session_number") + ", 1, 24)"
    insert_id = "substring(" + _sql_random_hex("'insert-id'", "number") + ", 1, 16)"
    return f"""
INSERT INTO {{table}} (
    uuid, event, properties, timestamp, team_id, distinct_id, elements_chain, created_at,
    person_id, inserted_at, _timestamp
)
WITH
    {{seed:UInt64}} AS seed,
    intDiv(number, {_BULK_EVENTS_PER_SESSION}) AS session_number,
    number % {_BULK_EVENTS_PER_SESSION} AS step,
    cityHash64(seed, 'session', session_number) AS session_hash,
    cityHash64(seed, 'event', number) AS event_hash,
    session_hash % {{users:UInt64}} AS user_number,
    cityHash64(seed, 'user', user_number) AS user_hash,
    user_hash % 5 = 0 AS is_app,
    session_hash % 50 = 0 AS is_late,
    session_hash % 3 = 0 AS has_campaign,
    {start} + toIntervalMicrosecond(intDiv(session_hash, 7) % {{session_start_span_us:UInt64}})
        AS session_start,
    session_start + toIntervalMicrosecond(step * {step_us} + event_hash % {step_us})
        AS ingested_at,
    if(
        is_late,
        ingested_at - toIntervalSecond(3600 + intDiv(session_hash, 11) % 259200),
        ingested_at - toIntervalMicrosecond(50000 + event_hash % 2000000)
    ) AS event_time,
    multiIf(
        step = 0, if(is_app, 'Application Opened', '$pageview'),
        is_app, {app_event},
        {web_event}
    ) AS event_name,
    1 + intDiv(user_hash, 7) % {len(_SITES)} AS site_number,
    {hosts}[site_number] AS host,
    {pages}[site_number] AS site_pages,
    site_pages[1 + intDiv(event_hash, 5) % length(site_pages)] AS path,
    {referring_domain} AS referring_domain,
    {session_id} AS session_id,
    {clicked_text} AS clicked_text
SELECT
    toUUID({event_uuid}),
    event_name,
    concat(
        '{{',
        if(
            is_app,
            concat(
                '"$os":"iOS","$os_version":"17.4","$device_type":"Mobile",',
                '"$device_manufacturer":"Apple","$device_model":"iPhone15,2",',
                '"$app_name":"Ünicorn Shop","$app_version":"2.3.1","$app_build":"231",',
                '"$lib":"posthog-ios","$lib_version":"3.2.0","$screen_width":393,',
                '"$screen_height":852,"$network_wifi":true,"$screen_name":"', {screen}, '"'
            ),
            concat(
                '"$os":"', {web_os}, '","$browser":"', {browser},
                '","$browser_version":', toString(110 + user_hash % 17),
                ',"$device_type":"Desktop","$screen_width":1728,"$screen_height":1117,',
                '"$viewport_width":1728,"$viewport_height":', toString(900 + user_hash % 100),
                ',"$lib":"web","$lib_version":"1.130.2",',
                '"$current_url":"https://', host, path, '","$host":"', host,
                '","$pathname":"', path, '","$referring_domain":"', referring_domain, '"'
            )
        ),
        ',"$timezone":"', {timezone}, '"',
        if(
            step = 0 AND has_campaign AND NOT is_app,
            concat(
                ',"utm_source":"google","utm_medium":"cpc","utm_campaign":"spring_sale_2024",',
                '"utm_term":"crème brûlée","utm_content":"ad_', toString(session_hash % 7),
                '","gclid":"Cj0KCQjw', {gclid}, '","gad_source":"1"'
            ),
            ''
        ),
        multiIf(
            event_name = '$web_vitals',
            concat(',"$web_vitals_LCP_value":', toString(round(400 + (event_hash % 40000) / 10, 1))),
            event_name = 'purchase',
            concat(',"amount":', toString(round(5 + (event_hash % 24400) / 100, 2)),
                   ',"currency":"EUR","product":"Crème brûlée"'),
            event_name = '$autocapture',
            concat(',"$event_type":"click","$el_text":"', clicked_text, '"',
                   if(clicked_text = 'GitHub',
                      ',"$external_click_url":"https://github.com/example/ünicorn"', '')),
            ''
        ),
        ',"$session_id":"', session_id,
        '","$window_id":"', session_id,
        '","$ip":"', IPv4NumToString(toUInt32(user_hash % 4294967296)),
        '","$insert_id":"', {insert_id},
        '","$time":', toString(toUnixTimestamp64Milli(event_time) / 1000),
        '}}'
    ),
    event_time,
    {{team_id:Int64}},
    if(user_hash % 2 = 0, concat('user-', toString(user_number), '@exämple.de'), {device_id}),
    if(
        event_name = '$autocapture',
        concat(
            'button.btn.btn-primary:attr__class="btn btn-primary"nth-child="1"',
            'nth-of-type="1"text="', clicked_text, '";',
            'div.container:attr__class="container"nth-child="2"nth-of-type="1";',
            'body:nth-child="2"nth-of-type="1"'
        ),
        ''
    ),
    ingested_at - toIntervalMillisecond(5 + event_hash % 400),
    toUUID({person_uuid}),
    if(event_hash % 100 = 0, NULL, ingested_at),
    toDateTime(ingested_at)
FROM numbers({{offset:UInt64}}, {{rows:UInt64}})
"""


_BULK_INSERT = _bulk_insert_sql()


def generate_bulk_events(
    client: Client,
    *,
    n: int,
    start: datetime,
    end: datetime,
    seed: int = 7,
    team_id: int = 1,
    database: str | None = None,
    batch_rows: int = 500_000,
) -> int:
    """Insert `n` realistic events, ingested over [start, end), computed inside ClickHouse.

    For benchmarks: sessions of web and app events with few-hundred-byte properties, campaign
    parameters, 2 % late sessions and 1 % NULL `inserted_at`. Rows are a function of the
    arguments only. Creates the tables if needed and returns the number of rows inserted.
    """
    start, end = _as_utc(start), _as_utc(end)
    session_span = _BULK_STEP * _BULK_EVENTS_PER_SESSION
    if end - start <= session_span:
        raise ValueError(f"the time range must span more than {session_span}")
    create_source_tables(client, database)
    statement = _BULK_INSERT.replace("{table}", qualified_table("events", database))
    parameters = {
        "seed": seed,
        "team_id": team_id,
        "users": max(1, n // _BULK_EVENTS_PER_USER),
        "start_us": (start - EPOCH) // timedelta(microseconds=1),
        "session_start_span_us": (end - start - session_span) // timedelta(microseconds=1),
    }
    for offset in range(0, n, batch_rows):
        rows = min(batch_rows, n - offset)
        client.command(statement, parameters=parameters | {"offset": offset, "rows": rows})
    return n
