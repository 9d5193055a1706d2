"""The exchange ledger's lines, as the event intake shows the citizen: one ExchangesRecorded
for the lines an adapter's transaction wrote (the `exchanges` table's rows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared_models import ExchangeDirection, ExchangesRecorded, RecordedExchange


def ledger_event(
    agency: str, file_id: str, request_id: str, lines: Iterable[Mapping[str, Any]]
) -> ExchangesRecorded:
    """The event of ledger `lines` (rows of adapter_sdk.tables.exchanges) of one request."""
    return ExchangesRecorded(
        file_id=file_id,
        request_id=request_id,
        agency=agency,
        exchanges=[
            RecordedExchange(
                exchange_id=line["exchange_id"],
                direction=ExchangeDirection(line["direction"]),
                purpose=line["purpose"],
                legal_basis=line["legal_basis"],
                payload_sha256=line["payload_sha256"],
                size_bytes=line["size_bytes"],
                at=line["at"],
            )
            for line in lines
        ],
    )
