"""Work a write transaction does just before it commits, asked for by what runs inside it.

Code running inside :meth:`seatgate.storage.db.Database.write` may hold
something back until the transaction's work is done -- rows to write last,
say, so that the lock they take is the last one the transaction takes. It
names a :class:`HookSlot` and asks :func:`transaction_hook` for the hook in
it: the first ask in a transaction creates the hook, later ones get the same
object. When the work has returned, every hook runs (:meth:`CommitHook.before_commit`)
in the order they were first asked for, the slots marked ``last`` after the
others; then the transaction commits, or rolls back in a dry run; then every
hook is closed, also when something failed. A transaction that is retried
starts again with no hooks.

Outside a write transaction there are no hooks: :func:`transaction_hook`
answers None and the caller does its work at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import Connection

# The execution option of a write transaction's Connection that holds its
# hooks: an option of that Connection object, made anew for every attempt, so
# the hooks cannot outlive it (Connection.info would: it belongs to the pooled
# DBAPI connection).
_OPTION = "seatgate_commit_hooks"


class CommitHook(Protocol):
    """Something a write transaction runs just before it commits."""

    def before_commit(self, conn: Connection) -> None:
        """Do the held-back work, inside the transaction (a dry run's too)."""
        ...

    def close(self) -> None:
        """Release what the hook holds; called once the transaction is over, whatever happened."""
        ...


H = TypeVar("H", bound=CommitHook)


@dataclass(frozen=True, eq=False)
class HookSlot(Generic[H]):
    """Where one kind of hook sits in a write transaction (compared by identity).

    ``factory`` makes the hook on first use; ``last`` runs it after every
    slot without it.
    """

    name: str
    factory: Callable[[], H]
    last: bool = False


def transaction_hook(conn: Connection, slot: HookSlot[H]) -> H | None:
    """The hook in ``slot`` of the write transaction ``conn`` is in, made on first use.

    None when ``conn`` is not in a :meth:`~seatgate.storage.db.Database.write`
    transaction.
    """
    hooks: CommitHooks | None = conn.get_execution_options().get(_OPTION)
    return None if hooks is None else hooks.get(slot)


class CommitHooks:
    """The hooks of one attempt at a write transaction (a context manager that closes them)."""

    def __init__(self) -> None:
        self._hooks: dict[HookSlot[Any], CommitHook] = {}
        self._ran: set[HookSlot[Any]] = set()

    def attach(self, conn: Connection) -> None:
        """Make these the hooks :func:`transaction_hook` finds for ``conn``."""
        conn.execution_options(**{_OPTION: self})

    def get(self, slot: HookSlot[H]) -> H:
        """The hook in ``slot``, made now if it is the first ask."""
        if slot in self._ran:
            # Whatever it would be given now would never be written.
            raise RuntimeError(f"the before-commit hook {slot.name!r} was asked for after it ran")
        hook = self._hooks.get(slot)
        if hook is None:
            hook = self._hooks[slot] = slot.factory()
        return cast(H, hook)

    def run(self, conn: Connection) -> None:
        """Run every hook once, in order: first asked first, ``last`` slots at the end.

        A hook may ask for another while it runs; that one runs too.
        """
        while pending := [slot for slot in self._hooks if slot not in self._ran]:
            # min() keeps the first of equals: the order of first use.
            slot = min(pending, key=lambda s: s.last)
            self._ran.add(slot)
            self._hooks[slot].before_commit(conn)

    def close(self) -> None:
        """Close every hook, even when one of them fails to close."""
        with ExitStack() as stack:
            for hook in self._hooks.values():
                stack.callback(hook.close)

    def __enter__(self) -> CommitHooks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
