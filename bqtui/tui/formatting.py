"""Short, stable text for numbers and times shown in tables."""

from datetime import UTC, datetime, timedelta


def rows_text(rows: int) -> str:
    return f"{rows:,}"


def bytes_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def time_text(moment: datetime | None) -> str:
    """Absolute UTC time: the same on every screen and in every log."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def duration_text(span: timedelta | None) -> str:
    if span is None:
        return "—"
    seconds = max(0, round(span.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def relative_text(moment: datetime, now: datetime) -> str:
    """ "in 12 min" / "3 h ago": for the next and last run, relative to the app's clock."""
    span = moment - now
    future = span.total_seconds() >= 0
    minutes = abs(span.total_seconds()) // 60
    if minutes < 1:
        amount = "<1 min"
    elif minutes < 60:
        amount = f"{minutes:.0f} min"
    elif minutes < 48 * 60:
        amount = f"{minutes // 60:.0f} h"
    else:
        amount = f"{minutes // (24 * 60):.0f} d"
    return f"in {amount}" if future else f"{amount} ago"
