"""What an agency plugs in: how our canonical request becomes its own call, and how
its answer comes back. One small interface; the runtime around it is shared."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from shared_models import Agency, AgencyDecision, AgencyRequestIssued


class AgencyAnswerInvalid(Exception):
    """The agency answered something that is not a valid decision."""


class AgencyPlugin(Protocol):
    agency: Agency

    async def submit(self, client: httpx.AsyncClient, request: AgencyRequestIssued) -> AgencyDecision:
        """Send the request to the agency's system and return its decision."""
        ...


class JsonRestPlugin:
    """An agency exposing a JSON REST endpoint that answers synchronously."""

    def __init__(self, agency: Agency) -> None:
        self.agency = agency

    def payload(self, request: AgencyRequestIssued) -> dict[str, Any]:
        return {
            "request_id": request.request_id,
            "file_id": request.file_id,
            "life_event": request.life_event,
            "citizen": request.citizen.model_dump(mode="json"),
            "description": request.description,
        }

    async def submit(self, client: httpx.AsyncClient, request: AgencyRequestIssued) -> AgencyDecision:
        response = await client.post(f"/agencies/{self.agency.value}/requests", json=self.payload(request))
        response.raise_for_status()
        try:
            body = response.json()
            return AgencyDecision(
                agency=self.agency,
                decision=body["decision"],
                summary=body["summary"],
                amount_eur=body.get("amount_eur"),
                start_date=body.get("start_date"),
                reason=body.get("reason"),
                agency_reference=body["agency_reference"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AgencyAnswerInvalid(f"réponse illisible de {self.agency.value} : {exc}") from exc


def plugin_for(agency: Agency) -> AgencyPlugin:
    return JsonRestPlugin(agency)
