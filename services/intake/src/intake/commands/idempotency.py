"""The Idempotency-Key mechanism, one for every POST that creates something: a retried
request with the same key gets what the first one created, and nothing is done twice; the
same key with a different request is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from guichet_runtime.db import UnitOfWork
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.statements import param, params, prepared

T = TypeVar("T")

#: A request racing another may find the row it collided with only after a few tries.
MAX_TRIES = 5


def request_digest(*parts: str) -> str:
    """What identifies a request's content, compared when its key comes again."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@prepared
def _by_key(table: sa.Table) -> sa.Select[Any]:
    """The row a request with this Idempotency-Key created (`params(idempotency_key=…)`)."""
    return sa.select(table).where(table.c.idempotency_key == param(table.c.idempotency_key))


async def once_per_key(
    uow: UnitOfWork,
    table: sa.Table,
    key: str | None,
    digest: str,
    *,
    create: Callable[[], Awaitable[T]],
    replay: Callable[[sa.Row], T],
    conflict: str,
) -> tuple[T, bool]:
    """Run `create` in a transaction (it inserts into `table` a row carrying the key and
    the digest, in columns `idempotency_key` and `request_digest`), then commit.

    Returns (result, created): the row an earlier request with the same key created, shown
    by `replay`, if any; a CONFLICT saying `conflict` if that request was a different one.
    A unique constraint broken by a concurrent request (same key at once, or a generated
    id taken) rolls back and tries again, so the other request's row is the answer.
    """
    for attempt in range(MAX_TRIES):
        async with uow:
            if key:
                earlier = (
                    await uow.conn.execute(_by_key(table), params(idempotency_key=key))
                ).first()
                if earlier is not None:
                    if earlier.request_digest != digest:
                        raise Refused(
                            RefusalKind.CONFLICT,
                            conflict,
                            field="Idempotency-Key",
                            errors=[{"field": "Idempotency-Key", "message": "Clé déjà utilisée."}],
                        )
                    return replay(earlier), False
            try:
                result = await create()
            except IntegrityError:
                if attempt == MAX_TRIES - 1:
                    raise
                continue  # leaving the block rolls the transaction back
            await uow.commit()
            return result, True
    raise AssertionError("unreachable")
