"""An adapter's own database (one schema for every agency): inbox, outbox, the requests
it transmitted, the callbacks it took, and the exchange ledger. The personal columns (the
agency's decision, a held callback's bytes) are sealed with the citizen's data key
(adapter_sdk.personal)."""

from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from guichet_runtime.db import UtcDateTime, messaging_tables, service_metadata
from guichet_runtime.personal_data import personal_data_key_refs_table
from guichet_runtime.statements import param, params, prepared


class RequestStatus(StrEnum):
    """Where a transmitted request stands (stored in `requests.status`)."""

    AWAITING = "accuse"  # acknowledged, no decision yet: a callback or a status poll decides
    DOCUMENT_REQUESTED = "piece_demandee"
    DECIDED = "decide"


class CallbackOutcome(StrEnum):
    """What became of a callback the adapter took (stored in `callbacks.outcome`)."""

    APPLIED = "applique"  # its decision was the request's decision
    SAME = "identique"  # the request was already decided the same way: no effect
    CONFLICT = "conflit"  # the request was already decided otherwise: recorded, not applied
    HELD = "en_attente"  # it came before the request was recorded: applied when it is
    ERASED = "efface"  # the citizen's data key was shredded: compared with nothing, not applied


metadata = service_metadata()
outbox, inbox = messaging_tables(metadata)
# Which citizen's data key seals each file's personal data (guichet_runtime.personal_data).
personal_data_key_refs = personal_data_key_refs_table(metadata)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("request_id", sa.String(60), primary_key=True),
    sa.Column("file_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, comment="accuse, piece_demandee, decide"),
    sa.Column("agency_reference", sa.String(100), nullable=False),
    sa.Column(
        "trace_headers", sa.Text, nullable=False, comment="JSON: trace context, for callbacks"
    ),
    sa.Column(
        "last_document_id",
        sa.String(60),
        nullable=True,
        comment="Intake's id of the last document sent for the request: answers after it carry it",
    ),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column(
        "answer",
        sa.Text,
        nullable=True,
        comment="JSON of the decision applied (a repeated decision from a conflicting one), "
        "sealed with the file's data key (adapter_sdk.personal) when the file has one",
    ),
    sa.Column(
        "next_poll_at",
        UtcDateTime,
        nullable=True,
        index=True,
        comment="When reconciliation next asks the agency for the state of the request",
    ),
    sa.Column(
        "polls",
        sa.Integer,
        nullable=False,
        server_default="0",
        comment="Status polls made since the request was last acknowledged",
    ),
)

callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("callback_id", sa.String(100), primary_key=True),
    sa.Column("request_id", sa.String(60), nullable=False, index=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column(
        "outcome",
        sa.String(20),
        nullable=False,
        server_default="applique",
        comment="applique, identique, conflit, en_attente, efface",
    ),
    sa.Column(
        "payload",
        sa.LargeBinary,
        nullable=True,
        comment="Exact bytes of a held callback, sealed with the file's data key (JSON of the "
        "sealed object) when the file has one",
    ),
    sa.Column(
        "answer",
        sa.Text,
        nullable=True,
        comment="JSON of a held callback's decision, sealed like the payload",
    ),
)

exchanges = sa.Table(
    "exchanges",
    metadata,
    sa.Column("exchange_id", sa.String(36), primary_key=True),
    sa.Column("request_id", sa.String(60), nullable=False, index=True),
    sa.Column("file_id", sa.String(32), nullable=False),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("purpose", sa.String(200), nullable=False),
    sa.Column("legal_basis", sa.String(300), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)

callback_signatures = sa.Table(
    "callback_signatures",
    metadata,
    sa.Column(
        "signature",
        sa.String(64),
        primary_key=True,
        comment="HMAC-SHA256 (hex) of a callback taken: the same one again is a replay",
    ),
    sa.Column(
        "signed_at",
        UtcDateTime,
        nullable=False,
        index=True,
        comment="The signature's timestamp; kept until it is outside the replay window",
    ),
)


@prepared
def request_by_id() -> sa.Select[Any]:
    """A request's row by its id (`params(request_id=…)`), built once: read at every step of
    a request (guichet_runtime.statements)."""
    return sa.select(requests).where(requests.c.request_id == param(requests.c.request_id))


async def request_row(conn: AsyncConnection, request_id: str) -> sa.Row[Any] | None:
    """A request's row; None when the request is not recorded."""
    row: sa.Row[Any] | None = (
        await conn.execute(request_by_id(), params(request_id=request_id))
    ).first()
    return row


@prepared
def file_of_request_id() -> sa.Select[Any]:
    """A request's file id by the request's id (`params(request_id=…)`), built once."""
    return sa.select(requests.c.file_id).where(
        requests.c.request_id == param(requests.c.request_id)
    )
