"""Adapters with the defects the contract test kit must catch (used by test_kit.py)."""

from __future__ import annotations

import itertools
import json

from adapter_sdk import (
    AgencyAdapter,
    AgencyAnswer,
    AgencyCall,
    AgencyReply,
    CanonicalRequest,
    DeadlineRule,
    Declaration,
)


class BrokenAdapter(AgencyAdapter):
    """Silence rule without a period, a label other than the catalogue's, a declared field
    never sent, a new request id on every send, and an answer reader that takes anything."""

    declaration = Declaration(
        agency="caf",
        label="CAF (adaptateur défectueux)",
        life_events=("naissance",),
        citizen_fields=frozenset({"given_name", "family_name", "postcode", "phone"}),
        deadline_rule=DeadlineRule.SILENCE_ACCEPTS,
        legal_basis="Code de la sécurité sociale, art. L. 114-12",
        purpose="Prestations familiales",
    )

    # Deterministic, so the simulated agency's decisions (derived from the id) are the same
    # on every run of the test.
    _sends = itertools.count(1)

    def build_call(self, request: CanonicalRequest) -> AgencyCall:
        citizen = request.citizen
        return AgencyCall.json(
            "/agencies/caf/requests",
            {
                # the defect: each send has a new id, the agency cannot recognise a retry
                "request_id": f"CAF-DEFECTUEUX-{next(self._sends)}",
                "file_id": request.file_id,
                "life_event": request.life_event,
                "citizen": {k: citizen[k] for k in ("given_name", "family_name", "postcode")},
            },
        )

    def read_answer(self, reply: AgencyReply) -> AgencyAnswer:
        body = json.loads(reply.body or b"{}")
        return AgencyAnswer(
            decision=body.get("decision", "accorde"),
            summary=body.get("summary", "Demande traitée"),
            agency_reference=body.get("agency_reference", "inconnue"),
        )


class SnoopingAdapter(AgencyAdapter):
    """Reads the citizen's email although its declaration does not list it."""

    declaration = BrokenAdapter.declaration.model_copy(
        update={
            "citizen_fields": frozenset({"given_name", "family_name", "postcode"}),
            "deadline_rule": DeadlineRule.NONE,
            "label": "CAF (adaptateur indiscret)",
        }
    )

    def build_call(self, request: CanonicalRequest) -> AgencyCall:
        citizen = request.citizen
        return AgencyCall.json(
            "/agencies/caf/requests",
            {
                "request_id": request.request_id,
                "citizen": {"family_name": citizen["family_name"], "email": citizen["email"]},
            },
        )

    def read_answer(self, reply: AgencyReply) -> AgencyAnswer:
        return AgencyAnswer.model_validate(reply.json())
