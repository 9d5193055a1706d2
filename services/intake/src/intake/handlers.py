"""Intake's use cases: open a file, and keep the citizen's view up to date from the
events of the other services. Plain async functions taking a command or event and a
unit of work."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from shared_models import (
    AGENCY_LABELS,
    AccessCodeIssued,
    AgencyAnswerReceived,
    AgencyRequestIssued,
    CitizenContact,
    CoordinatedAnswerIssued,
    Decision,
    Event,
    FileSubmitted,
    NotificationSent,
    NotificationKind,
    Referent,
    ReferentAssigned,
    ReferentChangeRequested,
    topics,
)
from intake.catalogue import CATALOGUE
from intake.schemas import FileIn
from intake.tables import access_codes, file_agencies, files, timeline

# Alphabet without look-alikes (no 0/O, 1/I/L), read aloud over the phone.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

AGENCY_STATUS_RANK = {"en_attente": 0, "transmis": 1, "repondu": 2}
DECISION_WORDS = {
    Decision.GRANTED: "accordé",
    Decision.REFUSED: "refusé",
    Decision.DOCUMENT_REQUESTED: "pièce justificative demandée",
}


def new_file_id(today: dt.date) -> str:
    return f"GU-{today.year}-" + "".join(secrets.choice(_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class SubmitFile:
    form: FileIn
    idempotency_key: str | None = None


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different request."""


def _digest(form: FileIn) -> str:
    return hashlib.sha256(form.model_dump_json().encode()).hexdigest()


async def submit_file(cmd: SubmitFile, uow: UnitOfWork) -> tuple[str, bool]:
    """Open the file and emit FileSubmitted. Returns (file_id, created)."""
    digest = _digest(cmd.form)
    if cmd.idempotency_key:
        existing = await _by_idempotency_key(uow, cmd.idempotency_key)
        if existing is not None:
            if existing.request_digest != digest:
                raise IdempotencyConflict(cmd.idempotency_key)
            return existing.file_id, False
    now = utcnow()
    form = cmd.form
    event_def = CATALOGUE[form.life_event]
    file_id = new_file_id(now.date())
    citizen = CitizenContact.model_validate(form.citizen.model_dump())
    event = FileSubmitted(
        file_id=file_id,
        occurred_at=now,
        life_event=form.life_event,
        life_event_label=event_def.label,
        agencies=list(event_def.agencies),
        citizen=citizen,
        description=form.description,
        urgent=form.urgent,
    )
    async with uow:
        try:
            await uow.conn.execute(
                files.insert().values(
                    file_id=file_id,
                    life_event=form.life_event,
                    citizen=citizen.model_dump(mode="json"),
                    description=form.description,
                    urgent=form.urgent,
                    status="depose",
                    created_at=now,
                    idempotency_key=cmd.idempotency_key,
                    request_digest=digest,
                )
            )
        except IntegrityError:
            raced = True  # leaving the block rolls the transaction back
        else:
            raced = False
            await uow.conn.execute(
                file_agencies.insert(),
                [
                    {"file_id": file_id, "agency": a.value, "status": "en_attente", "updated_at": now}
                    for a in event_def.agencies
                ],
            )
            await _add_timeline(uow, event, "depot", f"Dossier déposé : {event_def.label}.")
            uow.emit(topics.FILES_SUBMITTED, event)
            await uow.commit()
    if raced:
        # The same Idempotency-Key raced us: the other request's file is the answer.
        return await submit_file(cmd, uow)
    return file_id, True


async def _by_idempotency_key(uow: UnitOfWork, key: str) -> sa.Row | None:
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(files.c.file_id, files.c.request_digest).where(files.c.idempotency_key == key)
            )
        ).first()
    return row


async def _add_timeline(uow: UnitOfWork, event: Event, kind: str, label: str) -> None:
    await uow.conn.execute(
        insert_ignore(uow.conn, timeline).values(
            file_id=event.file_id,
            event_id=str(event.event_id),
            at=event.occurred_at,
            kind=kind,
            label=label,
        )
    )


async def _file_exists(uow: UnitOfWork, file_id: str) -> bool:
    found = await uow.conn.scalar(sa.select(files.c.file_id).where(files.c.file_id == file_id))
    return found is not None


async def _advance_agency(uow: UnitOfWork, file_id: str, agency: str, status: str, at: dt.datetime) -> None:
    """Move an agency's status forward only: events of different topics may cross."""
    lower = [s for s, rank in AGENCY_STATUS_RANK.items() if rank < AGENCY_STATUS_RANK[status]]
    await uow.conn.execute(
        file_agencies.update()
        .where(
            file_agencies.c.file_id == file_id,
            file_agencies.c.agency == agency,
            file_agencies.c.status.in_(lower),
        )
        .values(status=status, updated_at=at)
    )


class UnknownFile(Exception):
    """An event names a file intake never opened."""


async def _require_file(uow: UnitOfWork, file_id: str) -> None:
    if not await _file_exists(uow, file_id):
        raise UnknownFile(f"dossier inconnu : {file_id}")


class ChangeRefused(Exception):
    """A change of référent that cannot be granted; the message is for the citizen."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def request_referent_change(file_id: str, reason: str, uow: UnitOfWork) -> None:
    """The citizen asks for another référent: granted once per file, on an open file."""
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(files.c.status, files.c.referent, files.c.referent_change_requested_at)
                .where(files.c.file_id == file_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise ChangeRefused(404, f"Aucun dossier ne porte la référence {file_id}.")
        if row.status == "repondu":
            raise ChangeRefused(409, "Ce dossier est clos : la réponse coordonnée vous a été envoyée.")
        if row.referent is None:
            raise ChangeRefused(
                409, "Aucun référent n'est encore désigné pour ce dossier ; il le sera très bientôt."
            )
        if row.referent_change_requested_at is not None:
            raise ChangeRefused(
                409,
                "Un changement de référent a déjà été accordé pour ce dossier. "
                "Pour en demander un autre, adressez-vous au responsable de votre espace France Services.",
            )
        now = utcnow()
        await uow.conn.execute(
            files.update()
            .where(files.c.file_id == file_id)
            .values(referent_change_requested_at=now, referent_change_reason=reason)
        )
        event = ReferentChangeRequested(
            file_id=file_id, occurred_at=now, requested_by="citoyen", reason=reason
        )
        await _add_timeline(uow, event, "demande_changement", f"Vous avez demandé un autre référent. Motif : {reason}")
        uow.emit(topics.REFERENT_CHANGES, event)
        await uow.commit()


ACCESS_CODE_TTL = dt.timedelta(minutes=15)
ACCESS_CODE_MAX_ATTEMPTS = 5
ACCESS_CODES_PER_TTL = 3  # codes a file may be sent within ACCESS_CODE_TTL


class AccessRefused(Exception):
    """An access code that cannot be issued or accepted; the message is for the citizen."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _code_hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


async def issue_access_code(file_id: str, uow: UnitOfWork) -> dt.datetime:
    """Store a hashed one-time code and emit it once for the notification service to send.
    Returns when it expires."""
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(files.c.citizen, files.c.referent).where(files.c.file_id == file_id).with_for_update()
            )
        ).first()
        if row is None:
            raise AccessRefused(404, f"Aucun dossier ne porte la référence {file_id}.")
        citizen = CitizenContact.model_validate(row.citizen)
        if not citizen.email:
            # SMS sending arrives with the notification channels; until then, say so.
            raise AccessRefused(
                409,
                "Aucune adresse électronique n'est enregistrée pour ce dossier : le code ne peut pas "
                "vous être envoyé. Votre référent peut vous renseigner par téléphone.",
            )
        now = utcnow()
        recent = await uow.conn.scalar(
            sa.select(sa.func.count())
            .select_from(access_codes)
            .where(access_codes.c.file_id == file_id, access_codes.c.created_at > now - ACCESS_CODE_TTL)
        )
        if recent >= ACCESS_CODES_PER_TTL:
            raise AccessRefused(
                429, "Plusieurs codes vous ont déjà été envoyés : utilisez le dernier reçu ou réessayez dans 15 minutes."
            )
        code = f"{secrets.randbelow(10**6):06d}"
        salt = secrets.token_hex(16)
        expires_at = now + ACCESS_CODE_TTL
        await uow.conn.execute(
            access_codes.insert().values(
                file_id=file_id, code_hash=_code_hash(salt, code), salt=salt,
                created_at=now, expires_at=expires_at, attempts=0,
            )
        )
        try:
            referent = Referent.model_validate(row.referent) if row.referent else None
        except ValueError:  # a card recorded before agent ids were kept
            referent = None
        uow.emit(
            topics.ACCESS_CODES,
            AccessCodeIssued(
                file_id=file_id, occurred_at=now, code=code, expires_at=expires_at,
                citizen=citizen, referent=referent,
            ),
        )
        await uow.commit()
    return expires_at


async def verify_access_code(file_id: str, code: str, uow: UnitOfWork) -> None:
    """Accept a valid code once; a wrong one counts against every live code of the file."""
    async with uow:
        now = utcnow()
        live = (
            await uow.conn.execute(
                sa.select(access_codes)
                .where(
                    access_codes.c.file_id == file_id,
                    access_codes.c.used_at.is_(None),
                    access_codes.c.expires_at > now,
                    access_codes.c.attempts < ACCESS_CODE_MAX_ATTEMPTS,
                )
                .with_for_update()
            )
        ).all()
        if not live:
            raise AccessRefused(403, "Ce code n'est plus valable : demandez un nouveau code.")
        match = next((c for c in live if hmac.compare_digest(c.code_hash, _code_hash(c.salt, code))), None)
        if match is None:
            await uow.conn.execute(
                access_codes.update()
                .where(access_codes.c.id.in_([c.id for c in live]))
                .values(attempts=access_codes.c.attempts + 1)
            )
            await uow.commit()
            left = ACCESS_CODE_MAX_ATTEMPTS - 1 - max(c.attempts for c in live)
            if left <= 0:
                raise AccessRefused(403, "Code incorrect. Ce code n'est plus valable : demandez un nouveau code.")
            raise AccessRefused(
                403, f"Code incorrect. Il vous reste {left} essai{'s' if left > 1 else ''}."
            )
        await uow.conn.execute(access_codes.update().where(access_codes.c.id == match.id).values(used_at=now))
        await uow.commit()


async def on_referent_assigned(event: ReferentAssigned, uow: UnitOfWork) -> None:
    async with uow:
        await _require_file(uow, event.file_id)
        ref = event.referent
        await uow.conn.execute(
            files.update()
            .where(files.c.file_id == event.file_id)
            .values(
                # The whole card (agent and office ids too): pages link to the agent's office.
                referent=ref.model_dump(mode="json"),
                status=sa.case((files.c.status == "depose", "en_cours"), else_=files.c.status),
            )
        )
        if event.previous_referent is None:
            label = f"Votre référent est désigné : {ref.name}, {ref.office}."
        else:
            label = (
                f"Votre nouveau référent est {ref.name}, {ref.office} ; "
                f"{event.previous_referent.name} lui a transmis tout votre dossier."
                + (f" Motif : {event.reason}" if event.reason else "")
            )
        await _add_timeline(uow, event, "referent", label)
        await uow.commit()


async def on_agency_request_issued(event: AgencyRequestIssued, uow: UnitOfWork) -> None:
    async with uow:
        await _require_file(uow, event.file_id)
        await _advance_agency(uow, event.file_id, event.agency.value, "transmis", event.occurred_at)
        await _add_timeline(
            uow, event, "transmission", f"Dossier transmis à : {AGENCY_LABELS[event.agency]}."
        )
        await uow.commit()


async def on_agency_answer_received(event: AgencyAnswerReceived, uow: UnitOfWork) -> None:
    answer = event.answer
    async with uow:
        await _require_file(uow, event.file_id)
        await _advance_agency(uow, event.file_id, answer.agency.value, "repondu", event.occurred_at)
        await _add_timeline(
            uow,
            event,
            "reponse_organisme",
            f"Réponse reçue de {AGENCY_LABELS[answer.agency]} : {DECISION_WORDS[answer.decision]}.",
        )
        await uow.commit()


async def on_coordinated_answer(event: CoordinatedAnswerIssued, uow: UnitOfWork) -> None:
    async with uow:
        await _require_file(uow, event.file_id)
        await uow.conn.execute(
            files.update()
            .where(files.c.file_id == event.file_id)
            .values(
                status="repondu",
                answer={
                    "text": event.text,
                    "decisions": [d.model_dump(mode="json") for d in event.decisions],
                    "issued_at": event.occurred_at.isoformat(),
                },
            )
        )
        await _add_timeline(
            uow, event, "reponse_coordonnee", f"Réponse coordonnée rédigée par {event.referent.name}."
        )
        await uow.commit()


async def on_notification_sent(event: NotificationSent, uow: UnitOfWork) -> None:
    if event.kind is NotificationKind.AGENT_HANDOVER:
        return  # a message between agents; the citizen's timeline shows the change itself
    async with uow:
        await _require_file(uow, event.file_id)
        await _add_timeline(uow, event, "notification", f"Courriel envoyé : « {event.subject} ».")
        await uow.commit()


async def file_record(uow: UnitOfWork, file_id: str) -> dict | None:
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(files.c.file_id, files.c.citizen, files.c.description, files.c.urgent, files.c.created_at)
                .where(files.c.file_id == file_id)
            )
        ).first()
    if row is None:
        return None
    return {"file_id": row.file_id, "citizen": row.citizen, "description": row.description,
            "urgent": row.urgent, "created_at": row.created_at}


async def file_view(uow: UnitOfWork, file_id: str) -> dict | None:
    async with uow:
        row = (await uow.conn.execute(sa.select(files).where(files.c.file_id == file_id))).first()
        if row is None:
            return None
        agencies = (
            await uow.conn.execute(
                sa.select(file_agencies.c.agency, file_agencies.c.status)
                .where(file_agencies.c.file_id == file_id)
                .order_by(file_agencies.c.agency)
            )
        ).all()
        entries = (
            await uow.conn.execute(
                sa.select(timeline.c.at, timeline.c.kind, timeline.c.label)
                .where(timeline.c.file_id == file_id)
                .order_by(timeline.c.at, timeline.c.id)
            )
        ).all()
    labels = {a.value: label for a, label in AGENCY_LABELS.items()}
    return {
        "file_id": row.file_id,
        "status": row.status,
        "life_event": row.life_event,
        "life_event_label": CATALOGUE[row.life_event].label,
        "created_at": row.created_at,
        "referent": row.referent,
        "agencies": [{"agency": a.agency, "label": labels[a.agency], "status": a.status} for a in agencies],
        "answer": row.answer,
        "timeline": [{"at": e.at, "kind": e.kind, "label": e.label} for e in entries],
    }

