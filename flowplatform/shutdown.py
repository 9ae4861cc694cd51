"""Whether this server process has begun shutting down (``config.lifecycle`` begins it):
long-polls then answer at once and ``/readyz`` answers 503."""

from __future__ import annotations

_begun = False


def begun() -> bool:
    return _begun


def begin() -> None:
    global _begun
    _begun = True


def reset() -> None:
    global _begun
    _begun = False
