"""Intake's use cases: open a file, and keep the citizen's view up to date from the
events of the other services. Plain async functions taking a command or event and a
unit of work."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from shared_models import (
    AGENCY_LABELS,
    ExchangeDirection,
    ExchangeRecorded,
    SupportingDocumentSubmitted,
    AccessCodeIssued,
    AgencyAnswerReceived,
    AgencyRequestIssued,
    CitizenContact,
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    Decision,
    Event,
    FileSubmitted,
    NotificationSent,
    NotificationChannel,
    NotificationKind,
    Referent,
    ReferentAssigned,
    ReferentChangeRequested,
    ReferentMessageSent,
    ReferentThanked,
    SurveyAnswered,
    topics,
    ImplicitDecisionRecorded,
    LegalDeadlineSet,
)
from intake import indicators
from intake.catalogue import CATALOGUE
from intake.schemas import ContactIn, FileIn, SurveyIn
from intake.tables import (
    access_codes, documents, exchanges, file_agencies, files, referent_messages, surveys, thanks, timeline,
)

# Alphabet without look-alikes (no 0/O, 1/I/L), read aloud over the phone.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

AGENCY_STATUS_RANK = {"en_attente": 0, "transmis": 1, "piece_demandee": 2, "piece_envoyee": 3, "repondu": 4}
AGENCY_STATUS_LABELS = {
    "en_attente": "en attente de transmission",
    "transmis": "réponse attendue de l'organisme",
    "piece_demandee": "pièce justificative attendue de votre part",
    "piece_envoyee": "pièce transmise, réponse attendue de l'organisme",
    "repondu": "a répondu",
}
#: What a citizen may upload, recognised by the content's first bytes (not the name).
DOCUMENT_SIGNATURES = {
    "application/pdf": b"%PDF-",
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
}
MAX_DOCUMENT_BYTES = 512 * 1024
DECISION_WORDS = {
    Decision.GRANTED: "accordé",
    Decision.REFUSED: "refusé",
    Decision.DOCUMENT_REQUESTED: "pièce justificative demandée",
    Decision.IMPLICIT_ACCEPTANCE: "accepté implicitement (silence gardé pendant le délai légal)",
    Decision.IMPLICIT_REJECTION: "rejeté implicitement (silence gardé pendant le délai légal)",
}


def deadline_text(due_on: dt.date | None, state: str | None, rule: str | None) -> str | None:
    """What the citizen reads about an agency's legal deadline."""
    if state == "suspendu":
        return "Délai suspendu jusqu'à réception de la pièce demandée."
    if state == "en_cours" and due_on is not None:
        meaning = {
            "silence_vaut_acceptation": " ; sans réponse à cette date, votre demande sera acceptée",
            "silence_vaut_rejet": " ; sans réponse à cette date, votre demande sera rejetée (vous pourrez la contester)",
        }.get(rule or "", "")
        return f"Réponse au plus tard le {due_on:%d/%m/%Y}{meaning}."
    return None


async def on_deadline_set(event: LegalDeadlineSet, uow: UnitOfWork) -> None:
    """The agency's legal deadline as the assignment service keeps it (latest wins)."""
    async with uow:
        await _require_file(uow, event.file_id)
        await uow.conn.execute(
            file_agencies.update()
            .where(file_agencies.c.file_id == event.file_id, file_agencies.c.agency == event.agency)
            .values(due_on=event.due_on, deadline_state=event.state, deadline_rule=event.rule.value)
        )
        await uow.commit()


async def on_implicit_decision(event: ImplicitDecisionRecorded, uow: UnitOfWork) -> None:
    label = AGENCY_LABELS[event.agency]
    async with uow:
        await _require_file(uow, event.file_id)
        await _advance_agency(uow, event.file_id, event.agency, "repondu", event.occurred_at)
        await indicators.agency_decided(
            uow, event.file_id, event.agency, event.decision, event.occurred_at, event.decided_on
        )
        await _add_timeline(
            uow, event, "decision_implicite",
            f"{label} n'a pas répondu avant le {event.due_on:%d/%m/%Y} : "
            f"votre demande est {DECISION_WORDS[event.decision]}. Un courrier vous le confirme.",
        )
        await uow.commit()


async def ignore(event: object, uow: UnitOfWork) -> None:
    """Events of a shared topic this service has nothing to do with."""


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
                    {"file_id": file_id, "agency": a, "status": "en_attente", "updated_at": now}
                    for a in event_def.agencies
                ],
            )
            await indicators.file_opened(uow, file_id, now)
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
        if not (citizen.email or citizen.phone):
            # A letter would arrive after the code expires: email or SMS only.
            raise AccessRefused(
                409,
                "Aucune adresse électronique ni aucun numéro de téléphone ne sont enregistrés pour ce "
                "dossier : le code ne peut pas vous être envoyé. Votre référent peut vous renseigner "
                "au guichet ou par courrier.",
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
        await indicators.referent_assigned(uow, event.file_id, ref, event.occurred_at)
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
        await _advance_agency(uow, event.file_id, event.agency, "transmis", event.occurred_at)
        await _add_timeline(
            uow, event, "transmission", f"Dossier transmis à : {AGENCY_LABELS[event.agency]}."
        )
        await uow.commit()


async def on_agency_answer_received(event: AgencyAnswerReceived, uow: UnitOfWork) -> None:
    answer = event.answer
    label = AGENCY_LABELS[answer.agency]
    async with uow:
        await _require_file(uow, event.file_id)
        if answer.decision is Decision.DOCUMENT_REQUESTED and answer.requested_document is not None:
            document = answer.requested_document
            await uow.conn.execute(
                file_agencies.update()
                .where(file_agencies.c.file_id == event.file_id, file_agencies.c.agency == answer.agency,
                       file_agencies.c.status != "repondu")
                .values(status="piece_demandee", updated_at=event.occurred_at, requested_document={
                    "request_id": event.request_id, "code": document.code, "label": document.label,
                })
            )
            if event.after_document is None:
                said = f"{label} demande une pièce justificative : {document.label}."
            else:  # the document sent was found incomplete
                said = f"{label} juge incomplète la pièce envoyée et la demande à nouveau : {document.label} ({answer.summary})."
            await _add_timeline(
                uow, event, "piece_demandee", f"{said} Envoyez-la depuis votre dossier ; votre référent est prévenu."
            )
        else:
            await _advance_agency(uow, event.file_id, answer.agency, "repondu", event.occurred_at)
            if answer.decision is not Decision.DOCUMENT_REQUESTED:
                await indicators.agency_decided(
                    uow, event.file_id, answer.agency, answer.decision, event.occurred_at
                )
            await uow.conn.execute(
                file_agencies.update()
                .where(file_agencies.c.file_id == event.file_id, file_agencies.c.agency == answer.agency)
                .values(requested_document=None)
            )
            await _add_timeline(
                uow, event, "reponse_organisme", f"Réponse reçue de {label} : {DECISION_WORDS[answer.decision]}."
            )
        await uow.commit()


def _agency_label(code: str) -> str:
    return AGENCY_LABELS.get(code, code)


async def on_exchange_recorded(event: ExchangeRecorded, uow: UnitOfWork) -> None:
    """The exchange ledger, shown to the citizen: what went to or came from which agency, why."""
    async with uow:
        await _require_file(uow, event.file_id)
        await uow.conn.execute(
            insert_ignore(uow.conn, exchanges).values(
                exchange_id=event.exchange_id, file_id=event.file_id, agency=event.agency,
                direction=event.direction.value, purpose=event.purpose, legal_basis=event.legal_basis,
                payload_sha256=event.payload_sha256, size_bytes=event.size_bytes, at=event.occurred_at,
            )
        )
        label = _agency_label(event.agency)
        way = f"Transmis à {label}" if event.direction is ExchangeDirection.SENT else f"Reçu de {label}"
        await _add_timeline(
            uow, event, "echange",
            f"{way} — {event.purpose}. Base légale : {event.legal_basis}. "
            f"Empreinte SHA-256 : {event.payload_sha256}.",
        )
        await uow.commit()


class DocumentRefused(Exception):
    """A supporting document that cannot be taken; the message is for the citizen."""

    def __init__(self, status: int, message: str, field: str = "fichier") -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def document_type(content: bytes, declared: str | None) -> str:
    """The checked media type of an upload, or DocumentRefused in French."""
    if not content:
        raise DocumentRefused(422, "Le fichier est vide.")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise DocumentRefused(413, f"Le fichier dépasse {MAX_DOCUMENT_BYTES // 1024} Ko.")
    found = next((t for t, magic in DOCUMENT_SIGNATURES.items() if content.startswith(magic)), None)
    if found is None:
        raise DocumentRefused(415, "Format non accepté : envoyez un PDF, une image JPEG ou PNG.")
    if declared and declared not in (found, "application/octet-stream"):
        raise DocumentRefused(415, f"Le contenu du fichier ({found}) ne correspond pas au type annoncé ({declared}).")
    return found


async def submit_document(
    file_id: str, agency: str | None, filename: str, declared_type: str | None, content: bytes, uow: UnitOfWork
) -> tuple[str, str]:
    """Take the document an agency asked for and send it to that agency's adapter.
    Returns (document_id, agency)."""
    media_type = document_type(content, declared_type)
    async with uow:
        if not await _file_exists(uow, file_id):
            raise DocumentRefused(404, f"Aucun dossier ne porte la référence {file_id}.", "file_id")
        query = sa.select(file_agencies).where(
            file_agencies.c.file_id == file_id, file_agencies.c.status == "piece_demandee"
        )
        if agency:
            query = query.where(file_agencies.c.agency == agency)
        waiting = (await uow.conn.execute(query.with_for_update())).all()
        if not waiting:
            raise DocumentRefused(409, "Aucun organisme n'attend de pièce justificative pour ce dossier.", "agency")
        if len(waiting) > 1:
            names = ", ".join(w.agency for w in waiting)
            raise DocumentRefused(422, f"Plusieurs organismes attendent une pièce ({names}) : précisez lequel.", "agency")
        row = waiting[0]
        asked = row.requested_document
        document_id = str(uuid.uuid4())
        digest = hashlib.sha256(content).hexdigest()
        now = utcnow()
        name = (filename or "piece")[:200]
        await uow.conn.execute(documents.insert().values(
            document_id=document_id, file_id=file_id, agency=row.agency, request_id=asked["request_id"],
            code=asked["code"], filename=name, media_type=media_type, size_bytes=len(content),
            sha256=digest, content=content, uploaded_at=now,
        ))
        await uow.conn.execute(
            file_agencies.update()
            .where(file_agencies.c.file_id == file_id, file_agencies.c.agency == row.agency)
            .values(status="piece_envoyee", updated_at=now)
        )
        event = SupportingDocumentSubmitted(
            file_id=file_id, occurred_at=now, request_id=asked["request_id"], agency=row.agency,
            document_id=document_id, document_code=asked["code"], filename=name, media_type=media_type,
            sha256=digest, content_base64=base64.b64encode(content).decode(),
        )
        await _add_timeline(
            uow, event, "piece_envoyee", f"Pièce envoyée à {_agency_label(row.agency)} : {asked['label']}."
        )
        uow.emit(topics.agency_documents(row.agency), event)
        await uow.commit()
    return document_id, row.agency


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
                    "personal_word": event.personal_word,
                },
            )
        )
        await indicators.file_answered(uow, event.file_id, event.occurred_at)
        with_word = ", avec un mot personnel" if event.personal_word else ""
        await _add_timeline(
            uow, event, "reponse_coordonnee", f"Réponse coordonnée rédigée par {event.referent.name}{with_word}."
        )
        await uow.commit()


SENT_ON = {
    NotificationChannel.EMAIL: "Courriel envoyé",
    NotificationChannel.SMS: "SMS envoyé",
    NotificationChannel.LETTER: "Courrier postal envoyé",
}


async def on_notification_sent(event: NotificationSent, uow: UnitOfWork) -> None:
    if event.audience == "agent" or event.notification_id.endswith(":referent"):
        return  # a message between agents; the citizen's timeline shows the change itself
    async with uow:
        await _require_file(uow, event.file_id)
        if indicators.is_citizen_contact(event):
            await indicators.citizen_contacted(uow, event.file_id, event.occurred_at)
        await _add_timeline(uow, event, "notification", f"{SENT_ON[event.channel]} : « {event.subject} ».")
        if event.kind is NotificationKind.REFERENT_MESSAGE:
            # notification ids of these messages are "<file>:referent_message:<message id>"
            await uow.conn.execute(
                referent_messages.update()
                .where(referent_messages.c.message_id == event.notification_id.rsplit(":", 1)[-1],
                       referent_messages.c.file_id == event.file_id, referent_messages.c.delivered_at.is_(None))
                .values(channel=event.channel.value, delivered_at=event.occurred_at)
            )
        await uow.commit()


CHANNEL_WORDS = {
    "email": "par courriel",
    "sms": "par SMS",
    "courrier": "par courrier postal",
    "telephone": "par téléphone (et par courrier)",
}


async def _file_for_update(uow: UnitOfWork, file_id: str) -> sa.Row:
    row = (
        await uow.conn.execute(
            sa.select(files.c.status, files.c.citizen, files.c.referent)
            .where(files.c.file_id == file_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise ChangeRefused(404, f"Aucun dossier ne porte la référence {file_id}.")
    return row


async def change_contact_preferences(file_id: str, contact: ContactIn, uow: UnitOfWork) -> CitizenContact:
    """The citizen changes how they are reached; later messages follow the change."""
    async with uow:
        row = await _file_for_update(uow, file_id)
        names = {k: row.citizen[k] for k in ("given_name", "family_name")}
        citizen = CitizenContact.model_validate({**names, **contact.model_dump(mode="json")})
        now = utcnow()
        await uow.conn.execute(
            files.update().where(files.c.file_id == file_id).values(citizen=citizen.model_dump(mode="json"))
        )
        event = ContactPreferencesChanged(file_id=file_id, occurred_at=now, citizen=citizen)
        await _add_timeline(
            uow, event, "preferences",
            f"Vos préférences de contact sont enregistrées : vous serez contacté(e) {CHANNEL_WORDS[citizen.preferred_channel.value]}.",
        )
        uow.emit(topics.CONTACT_CHANGES, event)
        await uow.commit()
    return citizen


async def answer_survey(file_id: str, survey: SurveyIn, uow: UnitOfWork) -> None:
    """Once per file, after the coordinated answer."""
    async with uow:
        row = await _file_for_update(uow, file_id)
        if row.status != "repondu":
            raise ChangeRefused(
                409, "L'enquête de satisfaction s'ouvre quand la réponse coordonnée vous a été envoyée."
            )
        done = await uow.conn.scalar(sa.select(surveys.c.file_id).where(surveys.c.file_id == file_id))
        if done is not None:
            raise ChangeRefused(409, "Vous avez déjà répondu à l'enquête pour ce dossier : merci !")
        now = utcnow()
        referent = row.referent or {}
        await uow.conn.execute(
            surveys.insert().values(
                file_id=file_id, score=survey.score, referent_reachable=survey.referent_reachable,
                comment=survey.comment, referent_agent_id=referent.get("agent_id"), answered_at=now,
            )
        )
        event = SurveyAnswered(
            file_id=file_id, occurred_at=now, score=survey.score, referent_reachable=survey.referent_reachable,
            comment=survey.comment, referent_agent_id=referent.get("agent_id"), office_id=referent.get("office_id"),
        )
        await _add_timeline(uow, event, "enquete", f"Merci pour votre avis (note : {survey.score}/5).")
        uow.emit(topics.SURVEYS, event)
        await uow.commit()


async def thank_referent(file_id: str, message: str, uow: UnitOfWork) -> str:
    """The citizen thanks their référent by name (once per référent and file); returns the name."""
    async with uow:
        row = await _file_for_update(uow, file_id)
        if not row.referent or "agent_id" not in row.referent:
            raise ChangeRefused(409, "Aucun référent n'est encore désigné pour ce dossier ; il le sera très bientôt.")
        referent = Referent.model_validate(row.referent)
        already = await uow.conn.scalar(
            sa.select(thanks.c.thanks_id).where(thanks.c.file_id == file_id, thanks.c.agent_id == referent.agent_id)
        )
        if already is not None:
            raise ChangeRefused(
                409, f"Vous avez déjà remercié {referent.name} pour ce dossier : votre message lui a été transmis."
            )
        citizen = CitizenContact.model_validate(row.citizen)
        now = utcnow()
        thanks_id = str(uuid.uuid4())
        await uow.conn.execute(
            thanks.insert().values(
                thanks_id=thanks_id, file_id=file_id, agent_id=referent.agent_id, agent_name=referent.name,
                citizen_given_name=citizen.given_name, message=message, at=now,
            )
        )
        event = ReferentThanked(
            file_id=file_id, occurred_at=now, thanks_id=thanks_id, referent=referent, citizen=citizen, message=message
        )
        await _add_timeline(uow, event, "remerciement", f"Vous avez remercié {referent.name}.")
        uow.emit(topics.THANKS, event)
        await uow.commit()
    return referent.name


async def thanks_for_agent(uow: UnitOfWork, agent_id: str) -> dict:
    async with uow:
        rows = (
            await uow.conn.execute(
                sa.select(thanks).where(thanks.c.agent_id == agent_id).order_by(thanks.c.at.desc())
            )
        ).all()
    return {
        "agent_id": agent_id,
        "agent_name": rows[0].agent_name if rows else None,
        "count": len(rows),
        "thanks": [
            {"thanks_id": r.thanks_id, "file_id": r.file_id, "citizen_given_name": r.citizen_given_name,
             "message": r.message, "at": r.at}
            for r in rows
        ],
    }


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
                sa.select(file_agencies.c.agency, file_agencies.c.status, file_agencies.c.requested_document,
                          file_agencies.c.due_on, file_agencies.c.deadline_state, file_agencies.c.deadline_rule)
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
        ledger = (
            await uow.conn.execute(
                sa.select(exchanges).where(exchanges.c.file_id == file_id).order_by(exchanges.c.at)
            )
        ).all()
    labels = AGENCY_LABELS
    agency_view = [
        {
            "agency": a.agency, "label": labels[a.agency], "status": a.status,
            "status_label": AGENCY_STATUS_LABELS[a.status], "awaited": a.status != "repondu",
            "requested_document": (
                {"code": a.requested_document["code"], "label": a.requested_document["label"]}
                if a.requested_document and a.status == "piece_demandee" else None
            ),
            "due_on": a.due_on if a.status != "repondu" else None,
            "deadline": deadline_text(a.due_on, a.deadline_state, a.deadline_rule) if a.status != "repondu" else None,
        }
        for a in agencies
    ]
    return {
        "file_id": row.file_id,
        "status": row.status,
        "life_event": row.life_event,
        "life_event_label": CATALOGUE[row.life_event].label,
        "created_at": row.created_at,
        "referent": row.referent,
        "agencies": agency_view,
        "awaited": [a["label"] for a in agency_view if a["awaited"]],
        "answer": row.answer,
        "timeline": [{"at": e.at, "kind": e.kind, "label": e.label} for e in entries],
        "exchanges": [
            {"at": x.at, "agency": x.agency, "direction": x.direction, "purpose": x.purpose,
             "legal_basis": x.legal_basis, "payload_sha256": x.payload_sha256, "size_bytes": x.size_bytes}
            for x in ledger
        ],
    }


# --------------------------------------------------------------------------- référent's messages

MAX_MESSAGE = 2000


class MessageRefused(ChangeRefused):
    """A message from the desk that cannot be sent; the message is for agents."""


def _message_out(row: sa.Row) -> dict:
    return {
        "message_id": row.message_id, "file_id": row.file_id, "agent_id": row.agent_id,
        "agent_name": row.agent_name, "text": row.text, "at": row.at,
        "channel": row.channel, "delivered_at": row.delivered_at,
    }


async def send_referent_message(
    file_id: str, agent_id: str, text: str, uow: UnitOfWork, idempotency_key: str | None = None
) -> tuple[dict, bool]:
    """The file's current référent writes to the citizen; notification carries it on the
    citizen's channel, signed. A retried request with the same Idempotency-Key returns the
    first message and sends nothing more. Returns (message, created)."""
    digest = hashlib.sha256(f"{file_id}\n{agent_id}\n{text}".encode()).hexdigest()
    async with uow:
        if idempotency_key:
            earlier = (
                await uow.conn.execute(
                    sa.select(referent_messages).where(referent_messages.c.idempotency_key == idempotency_key)
                )
            ).first()
            if earlier is not None:
                if earlier.request_digest != digest:
                    raise MessageRefused(409, "Cette clé d'idempotence a déjà servi pour un autre message.")
                return _message_out(earlier), False
        row = await _file_for_update(uow, file_id)
        if not row.referent or "agent_id" not in row.referent:
            raise MessageRefused(409, "Aucun référent n'est encore désigné pour ce dossier.")
        referent = Referent.model_validate(row.referent)
        if referent.agent_id != agent_id:
            raise MessageRefused(403, "Seul le référent actuel du dossier peut écrire à l'usager depuis ce dossier.")
        now = utcnow()
        message_id = str(uuid.uuid4())
        try:
            await uow.conn.execute(
                referent_messages.insert().values(
                    message_id=message_id, file_id=file_id, agent_id=agent_id, agent_name=referent.name, text=text,
                    idempotency_key=idempotency_key, request_digest=digest, at=now,
                )
            )
        except IntegrityError:
            raced = True  # the same key, sent twice at once: the other request's message is the answer
        else:
            raced = False
            event = ReferentMessageSent(
                file_id=file_id, occurred_at=now, message_id=message_id, referent=referent,
                citizen=CitizenContact.model_validate(row.citizen), text=text,
            )
            await _add_timeline(uow, event, "message_referent", f"Message de votre référent, {referent.name} : « {text} »")
            uow.emit(topics.REFERENT_MESSAGES, event)
            await uow.commit()
    if raced:
        return await send_referent_message(file_id, agent_id, text, uow, idempotency_key)
    return {
        "message_id": message_id, "file_id": file_id, "agent_id": agent_id, "agent_name": referent.name,
        "text": text, "at": now, "channel": None, "delivered_at": None,
    }, True


async def referent_messages_of(uow: UnitOfWork, file_id: str) -> list[dict] | None:
    """The référent's messages to the citizen, oldest first, with the channel that carried
    each once it is delivered; None for an unknown file."""
    async with uow:
        if not await _file_exists(uow, file_id):
            return None
        rows = (
            await uow.conn.execute(
                sa.select(referent_messages).where(referent_messages.c.file_id == file_id)
                .order_by(referent_messages.c.at, referent_messages.c.message_id)
            )
        ).all()
    return [_message_out(r) for r in rows]
