"""No route escapes the policy (issue 12): every route of intake's, assignment's,
notification's and every installed adapter's app declares one, and it is the one of the
route -> policy table (docs/security.md)."""

from __future__ import annotations

import pytest

from guichet_runtime.policy import Policy, route_policies, routes_without_policy
from tests.unit.test_topology import _app, installed_agencies

P = Policy
RUNTIME = {
    "GET /health": P.OPS,
    "GET /health/live": P.OPS,
    "GET /health/ready": P.OPS,
    "GET /metrics": P.OPS,
}
TABLE: dict[str, dict[str, Policy]] = {
    "intake": {
        "GET /api/life-events": P.PUBLIC,
        "POST /api/files": P.SUBMIT_FILE,
        "GET /api/files/{file_id}": P.FILE_READ,
        "GET /api/files/{file_id}/record": P.FILE_AGENTS,
        "GET /api/files/{file_id}/audit": P.FILE_SUPERVISOR,
        "GET /api/files/{file_id}/contact": P.FILE_CITIZEN,
        "GET /api/me/files": P.CITIZEN,
        "GET /api/me/registered-files": P.FRONT_DESK,
        "POST /api/files/{file_id}/referent-change": P.FILE_CITIZEN,
        "PUT /api/files/{file_id}/contact-preferences": P.FILE_CITIZEN,
        "POST /api/files/{file_id}/survey": P.FILE_CITIZEN,
        "POST /api/files/{file_id}/thanks": P.FILE_CITIZEN,
        "POST /api/files/{file_id}/documents": P.FILE_READ,
        "POST /api/files/{file_id}/access-codes": P.ONE_TIME_CODE,
        "POST /api/files/{file_id}/access-codes/verify": P.ONE_TIME_CODE,
        "GET /api/agents/{agent_id}/thanks": P.AGENT_SELF,
        "POST /api/files/{file_id}/messages": P.FILE_REFERENT,
        "GET /api/files/{file_id}/messages": P.FILE_READ,
        "POST /api/files/{file_id}/citizen-messages": P.FILE_CITIZEN,
        "GET /api/files/{file_id}/thread": P.FILE_READ,
        "GET /api/files/{file_id}/attachments/{attachment_id}": P.FILE_READ,
        "GET /api/indicators": P.PUBLIC,
        "GET /api/indicators.csv": P.PUBLIC,
        "GET /internal/personal-data-keys/{key_id}": P.SERVICE_KEYS,
        "GET /api/me/export": P.CITIZEN,
        "GET /api/files/{file_id}/export": P.FILE_CITIZEN,
        "POST /api/files/{file_id}/erasure": P.FILE_CITIZEN,
        "GET /api/files/{file_id}/citizen": P.FILE_CITIZEN,
    },
    "assignment": {
        "GET /api/agents/{agent_id}": P.PUBLIC,
        "GET /api/agents/{agent_id}/portfolio": P.AGENT_SELF,
        "GET /api/agents/{agent_id}/inbox": P.AGENT_SELF,
        "POST /api/files/{file_id}/citizen-messages/read": P.FILE_REFERENT,
        "GET /api/files/{file_id}/assignment": P.FILE_AGENTS,
        "PUT /api/files/{file_id}/personal-word": P.FILE_REFERENT,
        "DELETE /api/files/{file_id}/personal-word": P.FILE_REFERENT,
        "GET /api/supervision/waiting": P.SUPERVISOR,
        "GET /api/supervision/portfolios": P.SUPERVISOR,
        "GET /api/supervision/deadlines": P.SUPERVISOR,
        "GET /api/supervision/stuck-requests": P.SUPERVISOR,
        "GET /api/files/{file_id}/stuck-requests": P.FILE_AGENTS,
        "POST /api/agents": P.DIRECTORY_ADMIN,
        "POST /api/directory/import": P.DIRECTORY_ADMIN,
        "POST /api/agents/{agent_id}/absences": P.AGENT_SUPERVISOR,
        "POST /api/agents/{agent_id}/return": P.AGENT_SUPERVISOR,
        "POST /api/agents/{agent_id}/departure": P.AGENT_SUPERVISOR,
        "POST /api/files/{file_id}/reassign": P.FILE_SUPERVISOR,
        "GET /api/files/{file_id}/audit": P.FILE_SUPERVISOR,
        "GET /api/files/{file_id}/export": P.FILE_CITIZEN,
        "GET /api/files/{file_id}/appointments": P.FILE_APPOINTMENTS,
        "GET /api/files/{file_id}/appointments/slots": P.FILE_APPOINTMENTS,
        "POST /api/files/{file_id}/appointments": P.FILE_APPOINTMENTS,
        "POST /api/files/{file_id}/appointments/{appointment_id}/move": P.FILE_APPOINTMENTS,
        "POST /api/files/{file_id}/appointments/{appointment_id}/cancel": P.FILE_APPOINTMENTS,
        "GET /api/agents/{agent_id}/appointments": P.AGENT_SELF,
    },
    "notification": {
        "GET /api/files/{file_id}/export": P.FILE_CITIZEN,
    },
}
ADAPTER = {
    "POST /callbacks": P.AGENCY_CALLBACK,
    "GET /declaration": P.PUBLIC,
    "GET /metrics/overhead": P.OPS,
}


def api_policies(app) -> dict[str, Policy]:
    """The table of `app`, runtime routes and the API's documentation aside."""
    docs = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    return {
        k: v
        for k, v in route_policies(app).items()
        if k not in RUNTIME and k.split(" ", 1)[1] not in docs
    }


@pytest.mark.parametrize("service", ["intake", "assignment", "notification"])
def test_every_route_of_a_service_declares_the_policy_of_the_table(service, tmp_path):
    app = _app(service, tmp_path)
    assert routes_without_policy(app) == []
    table = route_policies(app)
    assert {k: table[k] for k in RUNTIME} == RUNTIME
    assert api_policies(app) == TABLE[service]


@pytest.mark.parametrize("agency", installed_agencies())
def test_every_route_of_an_adapter_declares_the_policy_of_the_table(agency, tmp_path):
    app = _app(f"adapter-{agency.replace('_', '-')}", tmp_path)
    assert routes_without_policy(app) == []
    assert api_policies(app) == ADAPTER
