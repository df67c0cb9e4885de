"""An HMAC key of Cloud Storage: the access ID names it, the secret signs requests."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HmacKey:
    """The key ClickHouse and bqtui sign XML API requests with.

    The secret never shows in ``repr`` or ``str`` (and so not in tracebacks' locals, logs
    or screens); read ``secret`` only to sign or to hand it to ClickHouse.
    """

    access_id: str
    secret: str = field(repr=False)

    def __str__(self) -> str:
        return f"HMAC key {self.access_id}"

    def __repr__(self) -> str:
        return f"HmacKey(access_id={self.access_id!r}, secret='***')"
