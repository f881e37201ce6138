"""How one audit event is hashed: plain SHA-256, or HMAC-SHA256 under a key.

The key of a keyed chain is given by the composition root per database
engine (:func:`use_key`); this package never reads it from the
configuration or the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine

from seatgate.clock import to_utc
from seatgate.errors import ConfigError

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""

# Bumped if the encoding ever changes, so old and new hashes cannot collide.
_FORMAT = "seatgate-audit-1"
# The keyed rule has its own format tag: a keyed and a plain hash never share input.
FORMAT_KEYED = "seatgate-audit-hmac-1"
KEYED_ACTION = "audit.chain_keyed"
"""The action of the marker event where a chain starts to be keyed."""
MIN_KEY_BYTES = 32
# The key each database engine appends with (set by the composition root).
_KEYS: WeakKeyDictionary[Engine, bytes] = WeakKeyDictionary()
# One encoder for every event (json.dumps with options builds a new one per call).
ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def key_for(engine: Engine) -> bytes | None:
    """The key events written through ``engine`` are chained with (None: plain SHA-256)."""
    return _KEYS.get(engine)


def use_key(engine: Engine, key: bytes | None) -> None:
    """Chain the events written through ``engine`` with HMAC-SHA256 under ``key`` (None: plain).

    Raises :class:`ConfigError` for a key shorter than :data:`MIN_KEY_BYTES`.
    """
    if key is None:
        _KEYS.pop(engine, None)
        return
    check_key(key)
    _KEYS[engine] = key


def check_key(key: bytes) -> None:
    """Raise :class:`ConfigError` unless ``key`` is long enough to be an HMAC key."""
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            "audit.key_env",
            f"the audit chain key is {len(key)} bytes; it must be at least {MIN_KEY_BYTES}",
        )


def event_hash(prev_hash: str, event: Mapping[Any, Any], key: bytes | None = None) -> str:
    """The hash of one event: SHA-256 over a JSON list of ``prev_hash`` and its content.

    With ``key``, HMAC-SHA256 under it instead (a keyed chain), over the
    same list with its own format tag.

    ``event`` has the stored fields ``at``, ``actor``, ``action``, ``subject``,
    ``outcome`` and ``details`` (the JSON text, as stored). ``at`` is hashed
    as UTC with microseconds, so a naive value read back from SQLite and an
    aware one from PostgreSQL give the same text as the value written.
    """
    at: datetime = event["at"]
    fields = [
        _FORMAT if key is None else FORMAT_KEYED,
        prev_hash,
        to_utc(at).isoformat(timespec="microseconds"),
        event.get("actor"),
        event.get("action"),
        event.get("subject"),
        event.get("outcome"),
        event.get("details"),
    ]
    data = ENCODER.encode(fields).encode("ascii")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def hash_parts(event: Mapping[Any, Any]) -> tuple[str, str]:
    """The text hashed for ``event`` on a plain chain, split around its ``prev_hash``.

    ``SHA-256(prefix + prev_hash + suffix)``, the text ASCII, is
    :func:`event_hash` ``(prev_hash, event)`` without a key: what lets the
    database chain an event after a head it has just locked
    (:mod:`seatgate.audit.single_statement`).
    """
    text = ENCODER.encode(
        [
            _FORMAT,
            GENESIS,
            to_utc(event["at"]).isoformat(timespec="microseconds"),
            event.get("actor"),
            event.get("action"),
            event.get("subject"),
            event.get("outcome"),
            event.get("details"),
        ]
    )
    prefix = "[" + _QUOTE(_FORMAT) + ',"'
    return prefix, text[len(prefix) + len(GENESIS) :]


def content_hash(
    prev_hash: str, at_text: str, content: Sequence[str | None], key: bytes | None = None
) -> str:
    """:func:`event_hash` of an event given as its ``at`` text and content, for many events.

    ``at_text`` is the event's ``at`` as UTC ISO text with microseconds (what
    :func:`event_hash` makes of it); ``content`` is ``actor``, ``action``,
    ``subject``, ``outcome`` and ``details`` in that order. The same input
    gives the same hash as :func:`event_hash`; this form only lets a writer of
    many events with one timestamp format it once.
    """
    fields = [_FORMAT if key is None else FORMAT_KEYED, prev_hash, at_text, *content]
    data = _encode_texts(fields).encode("ascii")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.digest(key, data, "sha256").hex()


class RunHasher:
    """:func:`content_hash` for a run of events, with what repeats encoded once.

    The events of a bulk writer (an import, a sync) mostly share their
    timestamp, actor, action, outcome and details and differ in their subject:
    those parts are encoded as JSON once per distinct combination, and each
    event costs one quoting of its subject and one hash. The input hashed is
    exactly :func:`content_hash`'s (and so :func:`event_hash`'s).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key
        self._head = "[" + _QUOTE(_FORMAT if key is None else FORMAT_KEYED) + ","
        # (at_text, actor, action, outcome, details) -> (text before subject, text after).
        self._parts: dict[tuple[str | None, ...], tuple[str, str]] = {}

    def __call__(self, prev_hash: str, at_text: str, content: Sequence[str | None]) -> str:
        """The hash of one event, chained after ``prev_hash`` (as :func:`content_hash`)."""
        actor, action, subject, outcome, details = content
        parts = self._parts.get((at_text, actor, action, outcome, details))
        if parts is None:
            parts = self._encode_parts(at_text, actor, action, outcome, details)
        middle, tail = parts
        try:
            data = self._head + _QUOTE(prev_hash) + middle
            data += ("null" if subject is None else _QUOTE(subject)) + tail
        except TypeError:  # a subject that is not text: as content_hash encodes it
            return content_hash(prev_hash, at_text, content, self._key)
        if self._key is None:
            return hashlib.sha256(data.encode("ascii")).hexdigest()
        return hmac.digest(self._key, data.encode("ascii"), "sha256").hex()

    def chain(self, prev_hash: str, at_text: str, events: Sequence[Sequence[Any]]) -> list[str]:
        """The hashes of ``events`` (:data:`~seatgate.audit.chain.EventTuple` s at ``at_text``),
        each chained after the one before it and the first after ``prev_hash``.

        What calling the hasher once per event gives, in one loop: a bulk writer
        hashes a million events, and the call per event cost as much as the hash.
        """
        hashes: list[str] = []
        append, head, key = hashes.append, self._head, self._key
        # The first previous hash as stored, quoted as JSON; the others are our hex digests.
        quoted_prev = _QUOTE(prev_hash)
        shared: tuple[str | None, ...] = ()
        for _at, actor, action, subject, outcome, details in events:
            if (actor, action, outcome, details) != shared:  # the run's parts, mostly
                shared = (actor, action, outcome, details)
                middle, tail = self._parts.get((at_text, *shared)) or self._encode_parts(
                    at_text, actor, action, outcome, details
                )
            try:
                quoted = "null" if subject is None else _QUOTE(subject)
                data = f"{head}{quoted_prev}{middle}{quoted}{tail}".encode("ascii")
            except TypeError:  # a subject that is not text: as content_hash encodes it
                content = (actor, action, subject, outcome, details)
                prev_hash = content_hash(prev_hash, at_text, content, key)
            else:
                if key is None:
                    prev_hash = hashlib.sha256(data).hexdigest()
                else:
                    prev_hash = hmac.digest(key, data, "sha256").hex()
            quoted_prev = f'"{prev_hash}"'
            append(prev_hash)
        return hashes

    def _encode_parts(
        self,
        at_text: str,
        actor: str | None,
        action: str | None,
        outcome: str | None,
        details: str | None,
    ) -> tuple[str, str]:
        if len(self._parts) > 1000:
            self._parts.clear()  # a run of ever-new details: keep memory flat
        middle = "," + _encode_texts([at_text, actor, action])[1:-1] + ","
        tail = "," + _encode_texts([outcome, details])[1:]
        self._parts[(at_text, actor, action, outcome, details)] = (middle, tail)
        return middle, tail


def _encode_texts(fields: list[str | None]) -> str:
    """``ENCODER.encode(fields)`` for a list of texts and None: the same text, faster.

    JSONEncoder.encode builds a new C encoder on every call; for short lists that
    costs more than the encoding. Anything but text or None goes to ENCODER.
    """
    try:
        return "[" + ",".join(["null" if f is None else _QUOTE(f) for f in fields]) + "]"
    except TypeError:
        return ENCODER.encode(fields)


# What ENCODER quotes each text with (ensure_ascii=True).
_QUOTE = encode_basestring_ascii
