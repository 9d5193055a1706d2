"""Intake's key service: the citizens' data keys, for our services that read personal data
sealed with them (crypto-shredding, docs/data-protection.md). Not for people, nor for the
agencies' systems: a service account holding `personal-data-reader` only."""

from __future__ import annotations

from fastapi import APIRouter

from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime
from intake.commands.personal_data import personal_data_key
from intake.schemas import PersonalDataKeyOut


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/internal")

    @api.get(
        "/personal-data-keys/{key_id}",
        response_model=PersonalDataKeyOut,
        dependencies=[requires(Policy.SERVICE_KEYS)],
        responses={410: {"description": "The key was shredded: the data it sealed is erased."}},
    )
    async def get_personal_data_key(key_id: str) -> PersonalDataKeyOut:
        """A citizen's data key (base64 of 32 bytes), to open the personal fields it
        sealed; 410 once shredded. Keep it in memory only, for a short while."""
        served = await personal_data_key(runtime.uow(), key_id)
        return PersonalDataKeyOut(key_id=served.key_id, key=served.key)

    return api
