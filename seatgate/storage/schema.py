"""The current database schema.

A fresh database is created from these tables and stamped with the latest
schema version; an older database is brought here by the steps in
:mod:`seatgate.storage.migrations`. Change both together.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

metadata = MetaData()

Timestamp = DateTime(timezone=True)

schema_version = Table(
    "seatgate_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("login", String(256), nullable=False),
    # The normalised login (seatgate.accounts.logins.login_key): unique, so `Bob` and
    # `BOB ` can never be two accounts, whatever process inserts them.
    Column("login_key", String(256), nullable=False, unique=True),
    Column("display_name", String(256)),
    Column("email", String(320)),
    Column("source", String(16), nullable=False, default="local"),
    Column("external_id", String(256)),
    Column("dn", String(1024)),
    Column("groups", Text),
    Column("status", String(16), nullable=False, default="active"),
    Column("password_hash", String(512)),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("last_login_at", Timestamp),
    UniqueConstraint("source", "external_id", name="uq_accounts_source_external_id"),
    CheckConstraint("status IN ('active', 'disabled', 'deleted')", name="ck_accounts_status"),
    CheckConstraint("source IN ('local', 'csv', 'ldap')", name="ck_accounts_source"),
)
# The console's account listing (seatgate.accounts.browse): name and email prefix
# search, and the order by last login -- newest first with never-signed-in last,
# which PostgreSQL reads from this index backwards as well; SQLite sorts NULL first
# ascending and last descending, so a plain index serves both ways there.
ACCOUNT_LISTING_INDEXES = (
    Index("ix_accounts_name_lower", func.lower(accounts.c.display_name)),
    Index("ix_accounts_email_lower", func.lower(accounts.c.email)),
    Index("ix_accounts_source_login_key", accounts.c.source, accounts.c.login_key),
)
LAST_LOGIN_INDEXES = {
    "postgresql": Index(
        "ix_accounts_last_login_at",
        accounts.c.last_login_at.desc().nulls_last(),
        accounts.c.login_key.desc(),
    ).ddl_if(dialect="postgresql"),
    "sqlite": Index(
        "ix_accounts_last_login_at", accounts.c.last_login_at, accounts.c.login_key
    ).ddl_if(dialect="sqlite"),
}


def account_listing_indexes(dialect: str) -> list[Index]:
    """The account listing's indexes as ``dialect`` creates them."""
    last_login = LAST_LOGIN_INDEXES.get(dialect)
    return [*ACCOUNT_LISTING_INDEXES, *([last_login] if last_login is not None else [])]


seats = Table(
    "seats",
    metadata,
    # One row per seat holder; the primary key makes "one seat per account" a
    # database rule rather than a habit of the code.
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="RESTRICT"),
        primary_key=True,
    ),
    Column("assigned_at", Timestamp, nullable=False),
    Column("last_used_at", Timestamp, nullable=False),
    Column("pinned", Boolean, nullable=False, default=False),
    Column("assigned_by", String(256), nullable=False),
)
Index("ix_seats_lru", seats.c.pinned, seats.c.last_used_at)

license_tokens = Table(
    "license_tokens",
    metadata,
    Column("jti", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("lic", String(128)),
    Column("token", Text, nullable=False),
    Column("installed_at", Timestamp, nullable=False),
    Column("installed_by", String(256), nullable=False),
    # Licences and add-ons: when the updates period started (see
    # seatgate.licensing.lifecycle). Set once, at the first install; kept on removal
    # and reinstall, so taking a token out never restarts its year.
    Column("activated_at", Timestamp),
    # `seatgate license remove` marks a row removed instead of deleting it:
    # the jti stays remembered (a coupon cannot be replayed unnoticed) and
    # the audit trail keeps what was there.
    Column("removed_at", Timestamp),
    Column("removed_by", String(256)),
)

# The entitlement as last computed from the installed tokens, in one row.
# Every transaction that adds or removes a seat locks this row first
# (SELECT ... FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite), counts the
# seats and compares with `seats_total` -- which is how the seat invariant
# holds across processes and hosts.
license_state = Table(
    "license_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("valid", Boolean, nullable=False, default=False),
    Column("reason", String(512)),
    Column("edition", String(32)),
    Column("seats_total", Integer, nullable=False, default=0),
    Column("unlimited", Boolean, nullable=False, default=False),
    Column("trial", Boolean, nullable=False, default=False),
    Column("expires_at", Timestamp),
    Column("base_jti", String(128)),
    Column("updated_at", Timestamp, nullable=False),
    # The latest time this installation has seen, and its own clock's reading
    # when it last looked: a clock set back cannot stretch a trial
    # (seatgate.licensing.clock_guard).
    Column("clock_high_water", Timestamp),
    Column("clock_last_seen", Timestamp),
    # The highest seat-use threshold (0, 80, 90, 100 %) already reported, so
    # crossing one is audited once (seatgate.seats.usage).
    Column("usage_level", Integer, nullable=False, default=0),
    # Seats the licence's signed `overage` claim allows beyond `seats_total`:
    # the seat lock's check is "held < seats_total + overage_seats".
    Column("overage_seats", Integer, nullable=False, default=0),
    # The rows in `seats`, kept by triggers on `seats` (seatgate.storage.seat_counter):
    # read with the seat lock, it is the count a claim checks.
    Column("seats_held", Integer, nullable=False, default=0),
    CheckConstraint("id = 1", name="single_row"),
    CheckConstraint("seats_total >= 0", name="ck_license_state_seats"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(256)),
    Column("outcome", String(64)),
    Column("details", Text),
    # The hash chain (seatgate.audit.chain): each event stores the hash of
    # the one before it and its own, so an edited, inserted or deleted row
    # shows up in `seatgate audit verify`.
    Column("prev_hash", String(64)),
    Column("hash", String(64)),
)
Index("ix_audit_events_at", audit_events.c.at)

# The head of the audit hash chain, in one row. Appending events locks it
# (FOR UPDATE on PostgreSQL), as the very last step of a write transaction,
# so the chain has one order and the lock never waits on another lock.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("head_hash", String(64), nullable=False),
    Column("head_id", Integer),
    Column("events", Integer, nullable=False, default=0),
    CheckConstraint("id = 1", name="single_row"),
)

# Running totals of audit events by action and outcome (login decisions by
# reason for `seatgate metrics`), kept with the chain head under its lock.
audit_counts = Table(
    "audit_counts",
    metadata,
    Column("action", String(64), primary_key=True),
    Column("outcome", String(64), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
)

# Seats held per calendar month (UTC): the peak, when it was reached, and the
# count the month ended with (the next month starts from it). Written under
# the seat lock by every seat change (seatgate.seats.usage).
seat_usage = Table(
    "seat_usage",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("peak", Integer, nullable=False),
    Column("peak_at", Timestamp, nullable=False),
    Column("last", Integer, nullable=False),
    # The entitled seats when the peak was reached; NULL when unlimited.
    Column("seats_total", Integer),
    # The most seats held beyond the entitled ones at once this month (true-up).
    Column("overage_peak", Integer, nullable=False, default=0),
)

# Seats held per day (UTC): the most at once, the count the day ended with
# and the entitlement then; written with seat_usage (seatgate.seats.days).
seat_days = Table(
    "seat_days",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("peak", Integer, nullable=False),
    Column("last", Integer, nullable=False),
    Column("seats_total", Integer),
)

# CSV files uploaded in the console, kept until confirmed or expired (seatgate.imports.pending):
# the bytes that were checked, by SHA-256 and uploader, and the last check's outcome.
import_uploads = Table(
    "import_uploads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(256), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("state", String(16), nullable=False),
    Column("data", LargeBinary),  # NULL once applied
    Column("outcome", LargeBinary),  # zlib-compressed JSON
    UniqueConstraint("owner", "digest", name="uq_import_uploads_owner_digest"),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

# Failed login attempts inside the rate-limit window (seatgate.gate.ratelimit), pruned
# as new ones are written: minutes of history, never months. `address` is the client
# address the front door saw.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("login_key", String(256), nullable=False),
    Column("address", String(128), nullable=False),
    # The device cookie the attempt came with (seatgate.gate.devices), if any.
    Column("device", String(64), nullable=True),
)
Index("ix_login_failures_login_key_at", login_failures.c.login_key, login_failures.c.at)
Index("ix_login_failures_address_at", login_failures.c.address, login_failures.c.at)
Index("ix_login_failures_at", login_failures.c.at)
login_failures_device_at = Index(
    "ix_login_failures_device_at", login_failures.c.device, login_failures.c.at
)

# Throttled login attempts counted per limit and key, so that they are
# audited in aggregate (seatgate.gate.throttles): one row per throttled key.
login_throttles = Table(
    "login_throttles",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("subject", String(512), primary_key=True),
    Column("started_at", Timestamp, nullable=False),
    Column("last_at", Timestamp, nullable=False),
    Column("count", Integer, nullable=False),
)
Index("ix_login_throttles_last_at", login_throttles.c.last_at)

# The addresses each login last logged in from successfully: a recently known
# address of the real user is exempt from the per-login failure limit.
login_successes = Table(
    "login_successes",
    metadata,
    Column("login_key", String(256), primary_key=True),
    Column("address", String(128), primary_key=True),
    Column("last_at", Timestamp, nullable=False),
)
Index("ix_login_successes_last_at", login_successes.c.last_at)

# Web sessions (seatgate.sessions). The id is the SHA-256 of the session's
# token: the token itself lives only in the visitor's cookie, so a copy of
# the database opens no session. Rows are kept after a session ends (the
# reason and who ended it are audited) and pruned later; the per-account
# cap keeps each account's share small.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", Timestamp, nullable=False),
    # Written when the session opens; the per-request check never writes.
    Column("last_seen_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp),
    Column("ended_reason", String(32)),
    Column("client_address", String(128)),
    Column("user_agent", String(160)),
)
Index("ix_sessions_account_id", sessions.c.account_id, sessions.c.created_at)
# Finds the open sessions past their expiry, and the ended ones old enough to prune.
Index("ix_sessions_ended_at_expires_at", sessions.c.ended_at, sessions.c.expires_at)


# Bearer tokens for scripts (seatgate.accounts.api_tokens): only the SHA-256
# of a token is kept, so the database alone opens no API access.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    # Space-separated, e.g. "seats:read seats:write".
    Column("scopes", String(256), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("expires_at", Timestamp),
    Column("revoked_at", Timestamp),
    Column("revoked_by", String(256)),
    # Moved at most once a minute: a busy script does not write on every call.
    Column("last_used_at", Timestamp),
)


# Seat requests of logins refused for want of a seat (seatgate.seats.requests):
# one row per account, updated in place, so refused attempts at any rate
# never add rows. Approving or denying a request deletes it.
seat_requests = Table(
    "seat_requests",
    metadata,
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("first_at", Timestamp, nullable=False),
    Column("last_at", Timestamp, nullable=False),
    Column("attempts", Integer, nullable=False),
)

# The notification outbox (seatgate.storage.outbox): one row per event,
# written in the transaction of its cause. `dedupe_key` is unique, so a cause
# seen again (the same threshold crossed the same day, a timed reminder
# computed on every run) adds nothing: the table grows with causes, not requests.
notify_events = Table(
    "notify_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Sent with every delivery (X-Seatgate-Event-Id): receivers drop repeats by it.
    Column("event_id", String(32), nullable=False, unique=True),
    Column("dedupe_key", String(256), nullable=False, unique=True),
    Column("kind", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # JSON: what the templates fill in.
    Column("data", Text, nullable=False),
)

# Delivery of each event per channel ("email", "webhook:ORIGIN#HASH"): attempts, the
# next try (exponential backoff) and the last error, until delivered.
notify_deliveries = Table(
    "notify_deliveries",
    metadata,
    Column(
        "event",
        Integer,
        ForeignKey("notify_events.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("channel", String(512), primary_key=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Timestamp, nullable=False),
    Column("last_error", String(512)),
    Column("delivered_at", Timestamp),
)
Index("ix_notify_deliveries_due", notify_deliveries.c.delivered_at, notify_deliveries.c.next_at)
