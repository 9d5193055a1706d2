"""Open a file; change how the citizen is reached."""

from __future__ import annotations

from dataclasses import dataclass, field

from guichet_runtime import audit
from guichet_runtime.auth.principal import Principal
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.statements import inserting
from intake import metrics
from intake.catalogue import CATALOGUE
from intake.commands.access import ensure_access_proof
from intake.commands.idempotency import once_per_key, request_digest
from intake.commands.personal_data import seal_new_file
from intake.domain import (
    CHANNEL_WORDS,
    AgencyStatus,
    FileStatus,
    IntakeChannel,
    TimelineKind,
    ensure_not_erased,
    new_file_id,
    submitter_of,
)
from intake.records import add_timeline, file_for_update
from intake.schemas import ContactIn, FileCreated, FileIn
from intake.tables import file_agencies, files
from shared_models import (
    CitizenContact,
    ContactPreferencesChanged,
    FileSubmitted,
    Referent,
    topics,
)


@dataclass(frozen=True)
class SubmitFile:
    form: FileIn
    idempotency_key: str | None = None
    #: Who opens it, from the verified token (`domain.submitter_of`): anonymous by default.
    by: Principal = field(default_factory=Principal.anonymous)


async def submit_file(cmd: SubmitFile, uow: UnitOfWork) -> tuple[str, bool]:
    """`open_file`, for callers that need only the file's id: (file_id, created)."""
    opened, created = await open_file(cmd, uow)
    return opened.file_id, created


async def open_file(cmd: SubmitFile, uow: UnitOfWork) -> tuple[FileCreated, bool]:
    """Open the file and emit FileSubmitted, in one transaction that also gives what the
    submitter reads back. Returns (the file's reference, status and creation time, created):
    a retry with the same Idempotency-Key returns the first request's file, created False
    (the same key from another submitter is a conflict)."""
    form = cmd.form
    who = submitter_of(cmd.by, form.channel)
    # The form (digests of files filed before `channel` existed stay the same) and who.
    identity = [p for p in (who.citizen_subject, who.registered_by) if p]
    if who.channel is not IntakeChannel.ONLINE:
        identity.append(who.channel)
    digest = request_digest(form.model_dump_json(exclude={"channel"}), *identity)

    async def create() -> FileCreated:
        now = utcnow()
        event_def = CATALOGUE[form.life_event]
        file_id = new_file_id(now.date())
        citizen = CitizenContact.model_validate(form.citizen.model_dump())
        await uow.conn.execute(
            inserting(files),
            {
                "file_id": file_id,
                "life_event": form.life_event,
                "citizen": citizen.model_dump(mode="json"),
                "description": form.description,
                "urgent": form.urgent,
                "status": FileStatus.SUBMITTED,
                "created_at": now,
                "idempotency_key": cmd.idempotency_key,
                "request_digest": digest,
                "citizen_subject": who.citizen_subject,
                "registered_by": who.registered_by,
                "channel": who.channel,
            },
        )
        await uow.conn.execute(
            inserting(file_agencies),
            [
                {"file_id": file_id, "agency": a, "status": AgencyStatus.WAITING, "updated_at": now}
                for a in event_def.agencies
            ],
        )
        await metrics.file_opened(uow, file_id, now)
        await seal_new_file(uow, file_id, who.citizen_subject, citizen)
        event = FileSubmitted(
            file_id=file_id,
            occurred_at=now,
            life_event=form.life_event,
            life_event_label=event_def.label,
            agencies=list(event_def.agencies),
            citizen=citizen,
            description=form.description,
            urgent=form.urgent,
            channel=who.channel,
            registered_by=who.registered_by,
        )
        await add_timeline(
            uow, event, TimelineKind.SUBMITTED, f"Dossier déposé : {event_def.label}."
        )
        uow.emit(topics.FILES_SUBMITTED, event)
        if who.registered_by:
            audit.record(
                uow,
                cmd.by,
                audit.AuditAction.FILE_REGISTERED,
                file_id=file_id,
                channel=who.channel,
            )
        return FileCreated(file_id=file_id, status=FileStatus.SUBMITTED, created_at=now)

    return await once_per_key(
        uow,
        files,
        cmd.idempotency_key,
        digest,
        create=create,
        replay=lambda earlier: FileCreated(
            file_id=earlier.file_id, status=earlier.status, created_at=earlier.created_at
        ),
        conflict="Cette clé d'idempotence a déjà servi pour une autre demande.",
    )


@dataclass(frozen=True)
class ChangeContactPreferences:
    file_id: str
    contact: ContactIn
    #: The proof a verified access code gave (`access.verify_access_code`): only someone
    #: who controls the file's current channel changes it...
    access_proof: str | None
    #: ...or the file's citizen, logged in (the policy FILE_CITIZEN checked their token).
    logged_in: bool = False


async def change_contact_preferences(
    cmd: ChangeContactPreferences, uow: UnitOfWork
) -> CitizenContact:
    """The citizen, logged in or having proved control of the current channel, changes how
    they are reached; later messages follow the change, and the previous contact is told."""
    file_id = cmd.file_id
    async with uow:
        row = await file_for_update(uow, file_id)
        ensure_not_erased(row.erased_at)
        if not cmd.logged_in:
            await ensure_access_proof(uow, file_id, cmd.access_proof)
        previous = CitizenContact.model_validate(row.citizen)
        names = {k: row.citizen[k] for k in ("given_name", "family_name")}
        citizen = CitizenContact.model_validate({**names, **cmd.contact.model_dump(mode="json")})
        now = utcnow()
        await uow.conn.execute(
            files.update()
            .where(files.c.file_id == file_id)
            .values(citizen=citizen.model_dump(mode="json"))
        )
        try:
            referent = Referent.model_validate(row.referent) if row.referent else None
        except ValueError:  # a card recorded before agent ids were kept
            referent = None
        event = ContactPreferencesChanged(
            file_id=file_id,
            occurred_at=now,
            citizen=citizen,
            previous_citizen=previous,
            referent=referent,
        )
        channel = CHANNEL_WORDS[citizen.preferred_channel]
        await add_timeline(
            uow,
            event,
            TimelineKind.CONTACT_PREFERENCES,
            f"Vos préférences de contact sont enregistrées : vous serez contacté(e) {channel}.",
        )
        uow.emit(topics.CONTACT_CHANGES, event)
        await uow.commit()
    return citizen
