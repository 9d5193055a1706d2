"""What a failure of a record's handler means for its delivery: retried, handed back to
Kafka until the infrastructure is back, or dead-lettered (guichet_runtime.consumer)."""

from __future__ import annotations

import sqlalchemy.exc

from guichet_runtime.personal_data import KeyUnavailable


class TransientError(Exception):
    """A failure that will go away by itself (a remote system down): retry, never dead-letter."""


class PermanentError(Exception):
    """A record that can never be processed: dead-letter it at once."""


#: PostgreSQL's answers to transactions that got in each other's way: deadlock detected,
#: serialization failure, lock not available. Trying again later succeeds.
LOCK_CONFLICTS = frozenset({"40P01", "40001", "55P03"})


def lost_a_race(exc: BaseException) -> bool:
    """The database gave up this transaction for another (a deadlock, a serialization failure)."""
    return (
        isinstance(exc, sqlalchemy.exc.DBAPIError)
        and getattr(exc.orig, "sqlstate", None) in LOCK_CONFLICTS
    )


def is_transient(exc: BaseException) -> bool:
    return lost_a_race(exc) or isinstance(
        exc,
        TransientError
        | KeyUnavailable
        | OSError
        | TimeoutError
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError,
    )
