"""Routes of the citizen's actions on their file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Header, UploadFile

from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.policy import Policy, declared, requires
from guichet_runtime.sealing import Keyring
from guichet_runtime.service import Runtime
from intake.api.access import ACCESS_PROOF_HEADER, Access
from intake.api.limits import Limits
from intake.commands import access as codes
from intake.commands import citizen, documents
from intake.commands.files import ChangeContactPreferences, change_contact_preferences
from intake.domain import MAX_DOCUMENT_BYTES, PROOF_NEEDED, unknown_file
from intake.schemas import (
    AccessCodeIn,
    ContactIn,
    ContactOut,
    DocumentCreated,
    ReferentChangeIn,
    SurveyIn,
    ThanksIn,
)
from intake.views import own


def router(runtime: Runtime, limits: Limits, access: Access, keyring: Keyring) -> APIRouter:
    api = APIRouter()
    file_citizen = requires(Policy.FILE_CITIZEN, access.file())
    contact_changer = requires(Policy.FILE_CITIZEN, access.file(proof_needed=PROOF_NEEDED))

    @api.post(
        "/files/{file_id}/referent-change",
        status_code=202,
        dependencies=[limits.per_client("referent_changes_per_client"), file_citizen],
    )
    async def referent_change(file_id: str, body: ReferentChangeIn) -> Any:
        """The citizen asks for another référent (once per file, without approval)."""
        await citizen.request_referent_change(file_id, body.reason, runtime.uow())
        return {
            "message": "Votre demande est enregistrée : un nouveau référent vous sera présenté "
            "très vite, et tout votre dossier lui sera transmis."
        }

    @api.get("/files/{file_id}/contact", response_model=ContactOut, dependencies=[file_citizen])
    async def contact(file_id: str) -> Any:
        """The citizen's own contact preferences as stored (their contact form shows them):
        to the file's citizen only, logged in or with the proof of its one-time code."""
        found = await own.citizen_contact(runtime.uow(), file_id)
        if found is None:
            raise unknown_file(file_id)
        return found

    @api.put(
        "/files/{file_id}/contact-preferences",
        # The guard before the file's count: a refused outsider spends none of its quota
        # (FastAPI resolves these in order, and the `who` below reuses the guard's answer).
        dependencies=[
            limits.per_client("contact_changes_per_client"),
            contact_changer,
            limits.per_file("contact_changes_per_file"),
        ],
    )
    async def contact_preferences(
        file_id: str,
        body: ContactIn,
        access_proof: str | None = Header(
            default=None,
            alias=ACCESS_PROOF_HEADER,
            description="La preuve d'accès rendue par la vérification du code (30 minutes).",
        ),
        who: Principal = contact_changer,
    ) -> Any:
        """The citizen changes their channel or contact details: logged in, or with the
        proof a verified access code gave (401 without either); later messages follow, the
        previous contact is told."""
        logged_in = who.kind is PrincipalKind.CITIZEN
        contact = await change_contact_preferences(
            ChangeContactPreferences(file_id, body, access_proof, logged_in), runtime.uow()
        )
        return {
            "message": "Vos préférences de contact sont enregistrées.",
            "contact": contact.model_dump(mode="json", exclude={"given_name", "family_name"}),
        }

    @api.post(
        "/files/{file_id}/survey",
        status_code=201,
        dependencies=[limits.per_client("surveys_per_client"), file_citizen],
    )
    async def survey(file_id: str, body: SurveyIn) -> Any:
        """The satisfaction survey sent with the coordinated answer (once per file)."""
        await citizen.answer_survey(file_id, body, runtime.uow())
        return {"message": "Merci pour votre avis : il nous aide à mieux vous servir."}

    @api.post(
        "/files/{file_id}/thanks",
        status_code=201,
        dependencies=[
            limits.per_client("thanks_per_client"),
            file_citizen,  # before the file's count: a refused outsider spends none of it
            limits.per_file("thanks_per_file"),
        ],
    )
    async def thank(file_id: str, body: ThanksIn) -> Any:
        """The citizen thanks their référent by name."""
        name = await citizen.thank_referent(file_id, body.message, runtime.uow())
        return {"message": f"Merci ! Votre message est transmis à {name}."}

    @api.post(
        "/files/{file_id}/documents",
        status_code=201,
        response_model=DocumentCreated,
        dependencies=[
            limits.per_client("documents_per_client"),
            requires(Policy.FILE_READ, access.file()),
        ],
    )
    async def upload_document(
        file_id: str,
        fichier: UploadFile = File(..., description="La pièce : PDF, JPEG ou PNG, 512 Ko au plus."),
        agency: str | None = Form(
            default=None, description="Organisme destinataire, si plusieurs attendent une pièce."
        ),
    ) -> Any:
        """The citizen (or the counter, for them) sends the supporting document an agency
        asked for."""
        content = await fichier.read(MAX_DOCUMENT_BYTES + 1)
        document_id, to = await documents.submit_document(
            file_id,
            agency,
            fichier.filename or "piece",
            fichier.content_type,
            content,
            runtime.uow(),
        )
        return {
            "document_id": document_id,
            "agency": to,
            "message": "Pièce reçue : elle est transmise à l'organisme, qui reprend l'examen de "
            "votre demande.",
        }

    @api.post(
        "/files/{file_id}/access-codes",
        status_code=202,
        dependencies=[
            limits.per_client("access_codes_per_client"),
            limits.per_file("access_codes_per_file"),
            declared(Policy.ONE_TIME_CODE),
        ],
    )
    async def access_code(file_id: str) -> Any:
        """Send the citizen a one-time code to open their file online (no account needed)."""
        expires_at = await codes.issue_access_code(file_id, runtime.uow(), keyring)
        return {
            "message": "Un code vous a été envoyé par courriel à l'adresse enregistrée pour ce "
            "dossier.",
            "expires_at": expires_at,
        }

    @api.post(
        "/files/{file_id}/access-codes/verify",
        dependencies=[limits.per_client("code_checks_per_client"), declared(Policy.ONE_TIME_CODE)],
    )
    async def verify_access_code(file_id: str, body: AccessCodeIn) -> Any:
        """Check a one-time code; a valid code opens the file once and is then spent. It
        gives a proof of access, to send as `X-Access-Proof` to change the contact details."""
        proof = await codes.verify_access_code(file_id, body.code, runtime.uow())
        return {
            "file_id": file_id,
            "access": "accorde",
            "proof": proof.token,
            "proof_expires_at": proof.expires_at.isoformat(),
        }

    return api
