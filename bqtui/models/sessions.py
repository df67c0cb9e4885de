"""Sessions: one row per (team_id, $session_id), built from the session's events.

A session is exported in the window in which its last event was ingested; the versions that
decide a MERGE are end_timestamp, then max_inserted_at (a late event ingested later can leave
the end as it was).
"""

import pyarrow as pa
import pyarrow.compute as pc

from bqtui.core.config import ExportConfig, Model
from bqtui.models.base import (
    INGESTED_AT,
    PARSEABLE_PROPERTIES,
    WINDOW_PARAMETERS,
    ExportModel,
    ModelField,
)
from bqtui.models.channel_type import channel_type_sql

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
    # The instant in a UUIDv7 session id (NULL for other ids): unlike start_timestamp it never
    # changes for a session, so new tables are partitioned by it (README: Write modes and cost).
    ModelField("session_id_time", "TIMESTAMP", repetitive=False),
    # When the newest of the session's events was ingested: of two rows with the same
    # end_timestamp, the one that knows more (a late event) has the later value.
    ModelField("max_inserted_at", "TIMESTAMP", repetitive=False),
)

# PostHog's sessions (sessions_v3, see README: Models) take a session's entry attribution from
# its first $pageview or $screen, else from its first other event; its end URL from its last
# $pageview or $screen with one, else from its last other event with one. These orders put the
# views first (argMin) or last (argMax); ties in time break by uuid.
VIEWS_FIRST = "(event NOT IN ('$pageview', '$screen'), timestamp, uuid)"
VIEWS_LAST = "(event IN ('$pageview', '$screen'), timestamp, uuid)"


def _raw(name: str) -> str:
    """A property as PostHog's sessions read it: text (numbers and booleans as their JSON text),
    NULL when absent or JSON null; an empty string stays empty."""
    return f"JSONExtract(properties, '{name}', 'Nullable(String)')"


def _first_having(function: str, value: str, order: str) -> str:
    """``value`` of the first (argMin) or last (argMax) event by ``order`` that has it.

    PostHog's argMin/argMax over a Nullable value skip the events without it; written with an
    explicit condition so that every ClickHouse version skips them.
    """
    return f"tupleElement({function}If(tuple({value}), {order}, ({value}) IS NOT NULL), 1)"


# PostHog's channel type (bqtui/models/channel_type.py) of the session's entry event: its UTM
# source, medium and campaign, referring domain, gclid and fbclid presence and gad_source, all of
# the one event (PostHog's entry_channel_type_properties), first by VIEWS_FIRST.
_CHANNEL_INPUTS = (
    f"(argMin(tuple({_raw('utm_source')}, {_raw('utm_medium')}, {_raw('utm_campaign')}, "
    f"{_raw('$referring_domain')}, {_raw('gclid')} IS NOT NULL, {_raw('fbclid')} IS NOT NULL, "
    f"{_raw('gad_source')}), {VIEWS_FIRST}) AS _entry_channel_inputs)"
)
CHANNEL_TYPE = channel_type_sql(
    source=f"tupleElement({_CHANNEL_INPUTS}, 1)",
    medium="tupleElement(_entry_channel_inputs, 2)",
    campaign="tupleElement(_entry_channel_inputs, 3)",
    referring_domain="tupleElement(_entry_channel_inputs, 4)",
    has_gclid="tupleElement(_entry_channel_inputs, 5)",
    has_fbclid="tupleElement(_entry_channel_inputs, 6)",
    gad_source="tupleElement(_entry_channel_inputs, 7)",
)

_URL = _raw("$current_url")
# The distinct URLs of the session's $pageview and $screen events, in order of first visit.
URLS = (
    f"arrayDistinct(arrayMap(t -> t.3, arraySort(groupArrayIf((timestamp, uuid, "
    f"ifNull({_URL}, '')), event IN ('$pageview', '$screen') AND ifNull({_URL}, '') != ''))))"
)
ENTRY_URL = f"nullIf({_first_having('argMin', _URL, VIEWS_FIRST)}, '')"
END_URL = f"nullIf({_first_having('argMax', _URL, VIEWS_LAST)}, '')"
LAST_EXTERNAL_CLICK_URL = (
    f"nullIf({_first_having('argMax', _raw('$external_click_url'), '(timestamp, uuid)')}, '')"
)
# The first $web_vitals_LCP_value that reads as a number (a JSON number or a numeric string).
_LCP = (
    "accurateCastOrNull(replaceRegexpAll(nullIf(nullIf(JSONExtractRaw(properties, "
    "'$web_vitals_LCP_value'), ''), 'null'), '^\"|\"$', ''), 'Float64')"
)
VITALS_LCP = _first_having("argMin", _LCP, "(timestamp, uuid)")
# PostHog's: no $pageview or $screen is neither a bounce nor not one (NULL); else a bounce is one
# of them, no $autocapture, and under 10 seconds.
IS_BOUNCE = (
    "if(pageview_count + screen_count = 0, NULL, pageview_count + screen_count = 1 "
    "AND autocapture_count = 0 AND session_duration < 10)"
)


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


def _entry(name: str) -> str:
    """PostHog's $entry_<name>: the property of the first $pageview/$screen that has it, else of
    the first other event that has it (an empty value is NULL here)."""
    return f"nullIf({_first_having('argMin', _raw(name), VIEWS_FIRST)}, '')"


def _of_entry_event(name: str) -> str:
    """A property of the entry event itself, first by VIEWS_FIRST (NULL when it lacks it), as
    PostHog's $entry_msclkid (from the entry event's map of lower-tier ad ids)."""
    return f"nullIf(tupleElement(argMin(tuple({_raw(name)}), {VIEWS_FIRST}), 1), '')"


def build_query(export: ExportConfig) -> str:
    start, end = WINDOW_PARAMETERS
    # Aliases reuse source column names (distinct_id, team_id), hence
    # prefer_column_name_to_alias: inside aggregates the names mean the source columns.
    session_id = "JSONExtractString(properties, '$session_id')"
    raw_session_id = f"JSONExtractString({PARSEABLE_PROPERTIES}, '$session_id')"
    # Every event of a session in the window was ingested before the window's end (else the
    # session belongs to a later window): an exact bound that the inserted_at index prunes by.
    ingested_before_end = (
        f"(inserted_at < {end} OR (inserted_at IS NULL AND _timestamp < toDateTime({end})))"
    )
    return (
        _sessions_in_window(raw_session_id, start, end)
        + f"""SELECT
    *,
    toInt64(length(urls)) AS num_uniq_urls,
    {IS_BOUNCE} AS is_bounce
FROM (
    SELECT
"""
        + _session_columns(session_id)
        + f"""    FROM (
        SELECT uuid, event, {PARSEABLE_PROPERTIES} AS properties, timestamp, team_id, distinct_id,
            window_sessions.last_ingested AS last_ingested
        FROM events
        -- a join, not IN: it also brings each session's last ingestion (over every copy)
        INNER JOIN (SELECT session_id AS window_session_id, last_ingested
                    FROM sessions_in_window) AS window_sessions
            ON {raw_session_id} = window_sessions.window_session_id
        WHERE team_id = {{team_id:Int64}}
            AND timestamp >= (SELECT low FROM scan_from)
            AND {ingested_before_end}
        LIMIT 1 BY uuid
    )
    GROUP BY session_id
)
SETTINGS prefer_column_name_to_alias = 1
"""
    )


def _sessions_in_window(raw_session_id: str, start: str, end: str) -> str:
    """The window's sessions (every event ingested before its end, some since its start), and
    where the scan of their events starts."""
    return f"""
WITH sessions_in_window AS (
    SELECT {raw_session_id} AS session_id, min(timestamp) AS first_seen,
        {uuid7_start("session_id")} AS id_start, max({INGESTED_AT}) AS last_ingested
    FROM events
    WHERE team_id = {{team_id:Int64}} AND session_id != ''
        -- ingested since the window's start, as plain ranges a skip index can prune with
        AND (inserted_at >= {start} OR (inserted_at IS NULL AND _timestamp >= toDateTime({start})))
    GROUP BY session_id
    HAVING last_ingested < {end}
),
-- Where the scan of the sessions' events starts. A UUIDv7 id's events lie after the id's
-- instant (less the clock margin), so the primary key (team_id, toDate(timestamp), …) skips
-- the team's earlier history; another id says nothing of its start: the whole history. One
-- scan for all of the window's sessions (each use of sessions_in_window runs it again).
scan_from AS (
    SELECT multiIf(
        count() = 0, {_NEVER},
        countIf(id_start IS NULL) > 0, toDateTime64('1970-01-01 00:00:00', 6, 'UTC'),
        min(least(first_seen, id_start - INTERVAL {UUID7_CLOCK_MARGIN_HOURS} HOUR))) AS low
    FROM sessions_in_window
)
"""


def _session_columns(session_id: str) -> str:
    """One row per session: PostHog's session properties, aggregated over its events."""
    return f"""        {session_id} AS session_id,
        toInt64(any(team_id)) AS team_id,
        argMin(distinct_id, (timestamp, uuid)) AS distinct_id,
        min(timestamp) AS start_timestamp,
        max(timestamp) AS end_timestamp,
        {URLS} AS urls,
        {ENTRY_URL} AS entry_current_url,
        nullIf(path(entry_current_url), '') AS entry_pathname,
        nullIf(domain(entry_current_url), '') AS entry_hostname,
        {END_URL} AS end_current_url,
        nullIf(path(end_current_url), '') AS end_pathname,
        nullIf(domain(end_current_url), '') AS end_hostname,
        end_current_url AS exit_current_url,
        end_pathname AS exit_pathname,
        {_entry("utm_source")} AS entry_utm_source,
        {_entry("utm_campaign")} AS entry_utm_campaign,
        {_entry("utm_medium")} AS entry_utm_medium,
        {_entry("utm_term")} AS entry_utm_term,
        {_entry("utm_content")} AS entry_utm_content,
        {_entry("$referring_domain")} AS entry_referring_domain,
        {_entry("gclid")} AS entry_gclid,
        {_entry("fbclid")} AS entry_fbclid,
        {_entry("gad_source")} AS entry_gad_source,
        {_of_entry_event("msclkid")} AS entry_msclkid,
        {CHANNEL_TYPE} AS channel_type,
        toInt64(countIf(event = '$pageview')) AS pageview_count,
        toInt64(countIf(event = '$autocapture')) AS autocapture_count,
        toInt64(countIf(event = '$screen')) AS screen_count,
        -- PostHog's: second boundaries crossed between the first and the last event
        toInt64(dateDiff('second', min(timestamp), max(timestamp))) AS session_duration,
        session_duration AS duration,
        {LAST_EXTERNAL_CLICK_URL} AS last_external_click_url,
        {VITALS_LCP} AS vitals_lcp,
        {uuid7_start("session_id")} AS session_id_time,
        any(last_ingested) AS max_inserted_at
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
    partition_field="session_id_time",
    build_query=build_query,
    full_history_rows=sessions_without_uuid7,
    full_history_null_column="session_id_time",  # NULL exactly where the id is not UUIDv7
    full_history_note=full_history_note,
    partition_nullable=True,
    cluster_fields=("team_id", "session_id"),
    later_version_fields=("max_inserted_at",),
)
