"""An adapter's own database (one schema for every agency): inbox, outbox, the requests
it transmitted, the callbacks it took, and the exchange ledger."""

import sqlalchemy as sa

from guichet_runtime.db import UtcDateTime, messaging_tables, service_metadata

metadata = service_metadata()
outbox, inbox = messaging_tables(metadata)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("request_id", sa.String(60), primary_key=True),
    sa.Column("file_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, comment="accuse, piece_demandee, decide"),
    sa.Column("agency_reference", sa.String(100), nullable=False),
    sa.Column("trace_headers", sa.Text, nullable=False, comment="JSON: trace context, for callbacks"),
    sa.Column("last_document_id", sa.String(60), nullable=True,
              comment="Intake's id of the last document sent for the request: answers after it carry it"),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("callback_id", sa.String(100), primary_key=True),
    sa.Column("request_id", sa.String(60), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
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
