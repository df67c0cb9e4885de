"""Sessions: one row per (team_id, $session_id), built from the session's events.

A session is exported in the window in which its last event was ingested; the version that
decides a MERGE is end_timestamp.
"""

import pyarrow as pa
import pyarrow.compute as pc

from ..config import ExportConfig, Model
from .base import INGESTED_AT, PARSEABLE_PROPERTIES, WINDOW_PARAMETERS, ExportModel, ModelField

FIELDS = (
    ModelField("session_id", "STRING"),
    ModelField("team_id", "INT64"),
    ModelField("distinct_id", "STRING"),
    ModelField("start_timestamp", "TIMESTAMP"),
    ModelField("end_timestamp", "TIMESTAMP"),
    ModelField("urls", "STRING", repeated=True),
    ModelField("num_uniq_urls", "INT64"),
    ModelField("entry_current_url", "STRING"),
    ModelField("entry_pathname", "STRING"),
    ModelField("entry_hostname", "STRING"),
    ModelField("end_current_url", "STRING"),
    ModelField("end_pathname", "STRING"),
    ModelField("end_hostname", "STRING"),
    ModelField("exit_current_url", "STRING"),
    ModelField("exit_pathname", "STRING"),
    ModelField("entry_utm_source", "STRING"),
    ModelField("entry_utm_campaign", "STRING"),
    ModelField("entry_utm_medium", "STRING"),
    ModelField("entry_utm_term", "STRING"),
    ModelField("entry_utm_content", "STRING"),
    ModelField("entry_referring_domain", "STRING"),
    ModelField("entry_gclid", "STRING"),
    ModelField("entry_fbclid", "STRING"),
    ModelField("entry_gad_source", "STRING"),
    ModelField("entry_msclkid", "STRING"),
    ModelField("pageview_count", "INT64"),
    ModelField("autocapture_count", "INT64"),
    ModelField("screen_count", "INT64"),
    ModelField("session_duration", "INT64"),
    ModelField("duration", "INT64"),
    ModelField("is_bounce", "BOOL"),
    ModelField("channel_type", "STRING"),
    ModelField("last_external_click_url", "STRING"),
    ModelField("vitals_lcp", "FLOAT64"),
)

SEARCH_ENGINES = (
    "google", "bing", "duckduckgo", "yahoo", "yandex", "baidu", "ecosia", "qwant", "naver",
    "search.brave.com", "startpage",
)  # fmt: skip
SOCIAL_SITES = (
    "facebook", "instagram", "twitter", "t.co", "x.com", "linkedin", "lnkd.in", "reddit",
    "pinterest", "tiktok", "youtube", "threads.net", "bsky.app", "mastodon",
)  # fmt: skip


def _matches_any(column: str, needles: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{n}'" for n in needles)
    return f"multiSearchAny(lower({column}), [{listed}])"


# Channel from the entry event's referrer, UTM and click ids; first match wins.
CHANNEL_TYPE = f"""multiIf(
        entry_gclid IS NOT NULL OR entry_gad_source IS NOT NULL OR entry_msclkid IS NOT NULL,
            'Paid Search',
        entry_fbclid IS NOT NULL, 'Paid Social',
        lower(ifNull(entry_utm_medium, '')) IN ('cpc', 'ppc', 'paid', 'paidsearch', 'paid_search'),
            if({_matches_any("ifNull(entry_referring_domain, '')", SOCIAL_SITES)},
               'Paid Social', 'Paid Search'),
        lower(ifNull(entry_utm_medium, '')) IN ('display', 'banner', 'cpm'), 'Display',
        lower(ifNull(entry_utm_medium, '')) = 'email'
            OR lower(ifNull(entry_utm_source, '')) = 'email', 'Email',
        lower(ifNull(entry_utm_medium, '')) = 'affiliate', 'Affiliate',
        lower(ifNull(entry_utm_medium, '')) IN ('social', 'social-network', 'sm')
            OR {_matches_any("ifNull(entry_referring_domain, '')", SOCIAL_SITES)},
            'Organic Social',
        {_matches_any("ifNull(entry_referring_domain, '')", SEARCH_ENGINES)}, 'Organic Search',
        entry_utm_source IS NOT NULL OR entry_utm_medium IS NOT NULL
            OR entry_utm_campaign IS NOT NULL, 'Unknown',
        entry_referring_domain IS NULL OR entry_referring_domain = '$direct', 'Direct',
        'Referral'
    )"""


# A UUIDv7 session id carries the session's start (its first 48 bits, in milliseconds): the
# SDK creates it at the session's first event. Event timestamps are the client's clock as
# PostHog corrected it, so they may precede the id's instant by the client's clock error: the
# scan starts this much earlier.
UUID7_CLOCK_MARGIN_HOURS = 24
UUID7_PATTERN = (
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
# No session lies here: the bound of a scan that has no session to look for (reads nothing).
_NEVER = "toDateTime64('2200-01-01 00:00:00', 6, 'UTC')"


def uuid7_start(session_id: str) -> str:
    """The instant a UUIDv7 id was made (its first 48 bits, ms since the epoch), else NULL."""
    millis = (
        f"reinterpretAsUInt64(reverse(unhex(concat('0000', substring({session_id}, 1, 8), "
        f"substring({session_id}, 10, 4)))))"
    )
    return (
        f"if(match({session_id}, '{UUID7_PATTERN}'), "
        f"fromUnixTimestamp64Milli(toInt64({millis}), 'UTC'), NULL)"
    )


def _prop(name: str) -> str:
    return f"nullIf(JSONExtractString(properties, '{name}'), '')"


def _of_event(function: str, value: str, condition: str | None = None) -> str:
    """``value`` of the first (argMin) or last (argMax) event, NULL when that event lacks it.

    ClickHouse's argMin/argMax skip NULL values, which would take the value from another
    event; a one-element tuple is never NULL, so the chosen event's own value is kept.
    """
    if condition is None:
        return f"tupleElement({function}(tuple({value}), (timestamp, uuid)), 1)"
    return f"tupleElement({function}If(tuple({value}), (timestamp, uuid), {condition}), 1)"


def _entry(name: str) -> str:
    """A property of the session's first event (NULL when it lacks it)."""
    return _of_event("argMin", _prop(name))


def build_query(export: ExportConfig) -> str:
    start, end = WINDOW_PARAMETERS
    # Aliases reuse source column names (distinct_id, team_id), hence
    # prefer_column_name_to_alias: inside aggregates the names mean the source columns.
    session_id = "JSONExtractString(properties, '$session_id')"
    raw_session_id = f"JSONExtractString({PARSEABLE_PROPERTIES}, '$session_id')"
    url = "JSONExtractString(properties, '$current_url')"
    has_url = f"{url} != ''"
    is_view = "event IN ('$pageview', '$screen')"
    has_lcp = "JSONHas(properties, '$web_vitals_LCP_value')"
    # Every event of a session in the window was ingested before the window's end (else the
    # session belongs to a later window): an exact bound that the inserted_at index prunes by.
    ingested_before_end = (
        f"(inserted_at < {end} OR (inserted_at IS NULL AND _timestamp < toDateTime({end})))"
    )
    return f"""
WITH sessions_in_window AS (
    SELECT {raw_session_id} AS session_id, min(timestamp) AS first_seen,
        {uuid7_start("session_id")} AS id_start
    FROM events
    WHERE team_id = {{team_id:Int64}} AND session_id != ''
        -- ingested since the window's start, as plain ranges a skip index can prune with
        AND (inserted_at >= {start} OR (inserted_at IS NULL AND _timestamp >= toDateTime({start})))
    GROUP BY session_id
    HAVING max({INGESTED_AT}) < {end}
),
-- Sessions with UUIDv7 ids: their events lie after the id's instant (less the clock margin),
-- so the primary key (team_id, toDate(timestamp), …) skips the team's earlier history.
uuid7_span AS (
    SELECT if(count() = 0, {_NEVER}, min(least(first_seen,
        id_start - INTERVAL {UUID7_CLOCK_MARGIN_HOURS} HOUR))) AS low
    FROM sessions_in_window WHERE id_start IS NOT NULL
),
-- Other ids say nothing of their start: their events are looked for in the whole history.
other_ids AS (
    SELECT if(count() = 0, {_NEVER}, toDateTime64('1970-01-01 00:00:00', 6, 'UTC')) AS low
    FROM sessions_in_window WHERE id_start IS NULL
)
SELECT
    *,
    toInt64(length(urls)) AS num_uniq_urls,
    toInt64(pageview_count + screen_count = 1 AND autocapture_count = 0
        AND session_duration < 10) = 1 AS is_bounce,
    {CHANNEL_TYPE} AS channel_type
FROM (
    SELECT
        {session_id} AS session_id,
        toInt64(any(team_id)) AS team_id,
        argMin(distinct_id, (timestamp, uuid)) AS distinct_id,
        min(timestamp) AS start_timestamp,
        max(timestamp) AS end_timestamp,
        arrayDistinct(arrayFilter(u -> u != '',
            arrayMap(t -> t.3, arraySort(groupArray((timestamp, uuid, {url})))))) AS urls,
        nullIf(argMinIf({url}, (timestamp, uuid), {has_url}), '') AS entry_current_url,
        {_of_event("argMin", _prop("$pathname"), has_url)} AS entry_pathname,
        {_of_event("argMin", _prop("$host"), has_url)} AS entry_hostname,
        nullIf(argMaxIf({url}, (timestamp, uuid), {has_url}), '') AS end_current_url,
        {_of_event("argMax", _prop("$pathname"), has_url)} AS end_pathname,
        {_of_event("argMax", _prop("$host"), has_url)} AS end_hostname,
        {_of_event("argMax", _prop("$current_url"), is_view)} AS exit_current_url,
        {_of_event("argMax", _prop("$pathname"), is_view)} AS exit_pathname,
        {_entry("utm_source")} AS entry_utm_source,
        {_entry("utm_campaign")} AS entry_utm_campaign,
        {_entry("utm_medium")} AS entry_utm_medium,
        {_entry("utm_term")} AS entry_utm_term,
        {_entry("utm_content")} AS entry_utm_content,
        {_entry("$referring_domain")} AS entry_referring_domain,
        {_entry("gclid")} AS entry_gclid,
        {_entry("fbclid")} AS entry_fbclid,
        {_entry("gad_source")} AS entry_gad_source,
        {_entry("msclkid")} AS entry_msclkid,
        toInt64(countIf(event = '$pageview')) AS pageview_count,
        toInt64(countIf(event = '$autocapture')) AS autocapture_count,
        toInt64(countIf(event = '$screen')) AS screen_count,
        -- whole seconds elapsed (dateDiff would count second boundaries crossed)
        toInt64(intDiv(toUnixTimestamp64Micro(max(timestamp))
            - toUnixTimestamp64Micro(min(timestamp)), 1000000)) AS session_duration,
        session_duration AS duration,
        argMaxIf({_prop("$external_click_url")}, (timestamp, uuid),
            {_prop("$external_click_url")} IS NOT NULL) AS last_external_click_url,
        if(countIf({has_lcp}) = 0, NULL,
            argMinIf(JSONExtractFloat(properties, '$web_vitals_LCP_value'), (timestamp, uuid),
                {has_lcp})) AS vitals_lcp
    FROM (
        SELECT uuid, event, {PARSEABLE_PROPERTIES} AS properties, timestamp, team_id, distinct_id
        FROM events
        WHERE team_id = {{team_id:Int64}}
            AND timestamp >= (SELECT low FROM uuid7_span)
            AND {ingested_before_end}
            AND {raw_session_id} IN (SELECT session_id FROM sessions_in_window
                WHERE id_start IS NOT NULL)
        LIMIT 1 BY uuid
        UNION ALL
        SELECT uuid, event, {PARSEABLE_PROPERTIES} AS properties, timestamp, team_id, distinct_id
        FROM events
        WHERE team_id = {{team_id:Int64}}
            AND timestamp >= (SELECT low FROM other_ids)
            AND {ingested_before_end}
            AND {raw_session_id} IN (SELECT session_id FROM sessions_in_window
                WHERE id_start IS NULL)
        LIMIT 1 BY uuid
    )
    GROUP BY session_id
)
SETTINGS prefer_column_name_to_alias = 1
"""


def sessions_without_uuid7(batch: pa.RecordBatch) -> int:
    ids = batch.column("session_id")
    return len(ids) - (pc.sum(pc.match_substring_regex(ids, UUID7_PATTERN)).as_py() or 0)


def full_history_note(without_uuid7: int, sessions: int) -> str:
    return (
        f"{without_uuid7:,} of {sessions:,} session(s) have ids that are not UUIDv7, which "
        "carry no start time: their events were looked up in the team's whole history "
        "(README: Sessions of any length)."
    )


SESSIONS = ExportModel(
    model=Model.SESSIONS,
    fields=FIELDS,
    merge_key=("team_id", "session_id"),
    version_fields=("end_timestamp",),
    update_on_equal_version=True,
    insert_only=False,
    partition_field=None,
    build_query=build_query,
    full_history_rows=sessions_without_uuid7,
    full_history_note=full_history_note,
)
