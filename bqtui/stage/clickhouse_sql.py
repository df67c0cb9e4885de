"""The ClickHouse statement that writes a SELECT's rows as Parquet parts into an attempt's
folder, through the XML API with the HMAC key (``INSERT INTO FUNCTION s3(…)``).

The statement's text holds the HMAC secret, as ClickHouse's ``s3()`` takes it. Never log,
print, store or put it in an exception: ``str()`` and ``repr()`` of an ``InsertStatement`` are
its ``redacted()`` form; only ``sql`` is the real text, for the ClickHouse client alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bqtui.stage.hmac_key import HmacKey
from bqtui.stage.location import StageAttempt

# ClickHouse puts each PARTITION BY value in the object name; parts=1 writes part_0.
PART_NAME = "part_{_partition_id}.parquet"
SINGLE_PART_NAME = "part_0.parquet"
HIDDEN = "[HIDDEN]"  # what ClickHouse itself shows for secrets in its logs
# A row's part when none is given: even spread, different on each attempt (that is fine:
# an attempt's parts are loaded together or not at all).
DEFAULT_SPREAD = "rand()"


def sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal (backslashes and quotes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class InsertStatement:
    """``INSERT INTO FUNCTION s3(…) [PARTITION BY …] SELECT …`` for one attempt."""

    sql: str = field(repr=False)
    _redacted: str = field(repr=False)

    def redacted(self) -> str:
        """The statement with the secret replaced by ``[HIDDEN]``: safe for logs."""
        return self._redacted

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"InsertStatement({self.redacted()!r})"


def insert_statement(
    attempt: StageAttempt,
    key: HmacKey,
    select: str,
    *,
    parts: int = 1,
    spread_by: str = DEFAULT_SPREAD,
    endpoint: str | None = None,
) -> InsertStatement:
    """Write ``select``'s rows as Parquet into ``attempt``'s folder, split into ``parts``
    objects by ``(spread_by) % parts`` (each part is written by its own writer, so a
    cluster or a large window writes in parallel). ``endpoint``: the XML API's base URL,
    default ``$BQTUI_GCS_ENDPOINT`` or Google's.

    With parts > 1 an empty SELECT writes no object at all; with parts=1 it writes one
    Parquet object holding no rows.
    """
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts must be a positive whole number, got {parts!r}")
    name = PART_NAME if parts > 1 else SINGLE_PART_NAME
    url = attempt.write_url(endpoint) + name
    partition = f" PARTITION BY ({spread_by}) % {parts}" if parts > 1 else ""
    query = select.strip().rstrip(";").rstrip()

    def rendered(secret: str) -> str:
        arguments = f"{sql_string(url)}, {sql_string(key.access_id)}, {sql_string(secret)}"
        return f"INSERT INTO FUNCTION s3({arguments}, 'Parquet'){partition} {query}"

    return InsertStatement(rendered(key.secret), rendered(HIDDEN))
