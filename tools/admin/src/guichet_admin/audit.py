"""`guichet-admin audit`: check a service's audit trail, or anchor its head now.

The checks are the runtime's (`guichet_runtime.audit_verify`), reading the tables by name:
no service's code is imported. The anchoring key is AUDIT_ANCHOR_KEY, as the service has it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import create_async_engine

from guichet_admin.errors import AdminError
from guichet_admin.outbox import async_url
from guichet_runtime import audit
from guichet_runtime.audit_verify import Verdict, verify
from guichet_runtime.db import service_metadata


async def verify_database(url: str, key: bytes | None) -> Verdict:
    """The verdict on the trail of the database at `url`."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            return await verify(conn, key)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        raise AdminError(
            f"cannot read the audit tables ({exc.orig!r}); wrong URL, or the service's "
            "migrations never ran?"
        ) from exc
    except (OSError, sa.exc.InterfaceError) as exc:
        raise AdminError(f"cannot reach the database: {exc!r}") from exc
    finally:
        await engine.dispose()


async def anchor_database(url: str, key: bytes) -> dict[str, Any] | None:
    """Sign the trail's head now (the service's worker does it daily)."""
    tables = audit.audit_tables(service_metadata())
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            return await audit.anchor(conn, tables, key)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        raise AdminError(f"cannot anchor the audit trail ({exc.orig!r})") from exc
    finally:
        await engine.dispose()
