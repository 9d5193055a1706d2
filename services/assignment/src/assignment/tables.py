"""Assignment's own database: the agent directory, files and their agency requests."""

from typing import Any

import sqlalchemy as sa

from assignment.domain import AgentStatus
from guichet_runtime.audit import audit_tables
from guichet_runtime.db import BigIntId, UtcDateTime, messaging_tables, service_metadata
from guichet_runtime.personal_data import personal_data_key_refs_table
from guichet_runtime.statements import param, prepared

#: A personal text: a JSON string in clear, or the sealed object (SQL NULL stays NULL).
PersonalText = sa.JSON(none_as_null=True)

metadata = service_metadata()
outbox, inbox = messaging_tables(metadata)
# Which citizen's data key seals each file's personal data (guichet_runtime.personal_data).
personal_data_key_refs = personal_data_key_refs_table(metadata)
audit = audit_tables(metadata)

offices = sa.Table(
    "offices",
    metadata,
    sa.Column("office_id", sa.String(20), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("address", sa.String(300), nullable=False),
    sa.Column("commune", sa.String(100), nullable=False),
    sa.Column("departement", sa.String(3), nullable=False, index=True),
    sa.Column("latitude", sa.Float, nullable=False),
    sa.Column("longitude", sa.Float, nullable=False),
    sa.Column("opening_hours", sa.String(300), nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("agent_id", sa.String(30), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column(
        "office_id", sa.String(20), sa.ForeignKey("offices.office_id"), nullable=False, index=True
    ),
    sa.Column("phone", sa.String(30), nullable=False),
    sa.Column("email", sa.String(200), nullable=False),
    sa.Column("agencies", sa.JSON, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("active_files", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String(20), nullable=False, default=AgentStatus.ACTIVE.value),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("file_id", sa.String(32), primary_key=True),
    sa.Column("citizen_key", sa.String(250), nullable=False),
    sa.Column("citizen", sa.JSON, nullable=False),
    sa.Column("agencies", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("life_event", sa.String(50), nullable=False),
    sa.Column("life_event_label", sa.String(200), nullable=False),
    # Personal columns: the value in clear (JSON) or sealed with the file's data key
    # (assignment.personal_columns): citizen, description, personal_word.
    sa.Column("description", PersonalText, nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column(
        "referent_id", sa.String(30), sa.ForeignKey("agents.agent_id"), nullable=True, index=True
    ),
    sa.Column(
        "titular_id",
        sa.String(30),
        sa.ForeignKey("agents.agent_id"),
        nullable=True,
        index=True,
        comment="the usual référent while `referent_id` covers their absence",
    ),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Column(
        "personal_word",
        PersonalText,
        nullable=True,
        comment="the référent's word joined to the coordinated answer",
    ),
    sa.Column(
        "personal_word_agent_id",
        sa.String(30),
        nullable=True,
        comment="who wrote it: the answer carries it only if that agent signs the answer",
    ),
    sa.Column("personal_word_at", UtcDateTime, nullable=True),
    sa.Column(
        "registered_by",
        sa.String(50),
        nullable=True,
        comment="the front-desk agent who registered the file for the citizen",
    ),
    # Continuity looks up a citizen's latest file; housekeeping the oldest waiting ones.
    sa.Index(None, "citizen_key", "created_at"),
    sa.Index(None, "status", "urgent", "created_at"),
)

agency_requests = sa.Table(
    "agency_requests",
    metadata,
    sa.Column("request_id", sa.String(60), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("agency", sa.String(30), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("answer", sa.JSON, nullable=True),  # personal: sealed like files.citizen
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Column(
        "answer_after_document",
        sa.String(60),
        nullable=True,
        comment=(
            "the citizen's document the stored answer follows (none: the answer to the request)"
        ),
    ),
)

assignments = sa.Table(
    "assignments",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("agent_id", sa.String(30), sa.ForeignKey("agents.agent_id"), nullable=False),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("explanation", PersonalText, nullable=False),  # may quote a reason: sealed
    sa.Column("considered", sa.JSON, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)

absences = sa.Table(
    "absences",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column(
        "agent_id", sa.String(30), sa.ForeignKey("agents.agent_id"), nullable=False, index=True
    ),
    sa.Column("starts_on", sa.Date, nullable=False),
    sa.Column("ends_on", sa.Date, nullable=False, comment="last day of absence, inclusive"),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column(
        "status", sa.String(20), nullable=False, index=True, comment="prevue, en_cours, terminee"
    ),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

supervisors = sa.Table(
    "supervisors",
    metadata,
    sa.Column("supervisor_id", sa.String(30), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(30), nullable=False),
    sa.Column("departements", sa.JSON, nullable=False, comment="départements they supervise"),
)

directory_imports = sa.Table(
    "directory_imports",
    metadata,
    sa.Column("version", sa.String(50), primary_key=True),
    sa.Column("imported_at", UtcDateTime, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
)

legal_clocks = sa.Table(
    "legal_clocks",
    metadata,
    sa.Column("request_id", sa.String(60), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("agency", sa.String(30), nullable=False),
    sa.Column(
        "rule",
        sa.String(30),
        nullable=False,
        comment="silence_vaut_acceptation, silence_vaut_rejet, aucune",
    ),
    sa.Column(
        "period_months",
        sa.Integer,
        nullable=True,
        comment="legal period in calendar months, counted date to date (CRPA L231-1)",
    ),
    sa.Column("period_days", sa.Integer, nullable=True),
    sa.Column("received_on", sa.Date, nullable=False, comment="Paris calendar day of receipt"),
    sa.Column("due_on", sa.Date, nullable=True, comment="last day to answer; null while suspended"),
    sa.Column("remaining_days", sa.Integer, nullable=True, comment="days left when suspended"),
    sa.Column("suspended_on", sa.Date, nullable=True),
    sa.Column("suspensions", sa.Integer, nullable=False, default=0),
    sa.Column(
        "status",
        sa.String(20),
        nullable=False,
        comment="en_cours, suspendu, repondu, echu, sans_delai",
    ),
    sa.Column("warned_15", sa.Boolean, nullable=False, default=False),
    sa.Column("warned_7", sa.Boolean, nullable=False, default=False),
    sa.Column("breached", sa.Boolean, nullable=False, default=False),
    sa.Column(
        "checked_at",
        UtcDateTime,
        nullable=True,
        comment="when reconciliation last asked the agency where the request stands",
    ),
    sa.Column(
        "check_finding",
        sa.String(20),
        nullable=True,
        comment="what it found: en_instruction (no decision yet) or echec (no usable answer)",
    ),
    sa.Column("checks", sa.Integer, nullable=True, comment="status queries made so far"),
    # The housekeeping scan: running clocks by due date.
    sa.Index(None, "status", "due_on"),
)

citizen_messages = sa.Table(
    "citizen_messages",
    metadata,
    sa.Column("message_id", sa.String(36), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column(
        "addressed_to",
        sa.String(30),
        nullable=False,
        comment="who was to answer when it came: the référent, or their cover",
    ),
    sa.Column("attachments", sa.Integer, nullable=False, server_default="0"),
    sa.Column("read_at", UtcDateTime, nullable=True),
    sa.Column("read_by", sa.String(30), nullable=True),
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Column("answered_by", sa.String(30), nullable=True),
    sa.Column(
        "remind_at",
        UtcDateTime,
        nullable=True,
        comment="the answer-time promise's last day begins: the answerer is reminded",
    ),
    sa.Column(
        "answer_due_at",
        UtcDateTime,
        nullable=True,
        comment="the answer-time promise ends: the supervisors are alerted",
    ),
    sa.Column("reminded_at", UtcDateTime, nullable=True),
    sa.Column("escalated_at", UtcDateTime, nullable=True),
    # The inbox: a file's messages not answered yet.
    sa.Index(None, "file_id", "answered_at"),
    # The housekeeping scan: unanswered messages by the end of their promise.
    sa.Index("ix_citizen_messages_promise", "answered_at", "escalated_at", "answer_due_at"),
)


#: Only one booked appointment per référent and start: two citizens racing for one slot get
#: one booking and one refusal (the database decides, whatever the replicas).
BOOKED = sa.text("status = 'reserve'")

appointments = sa.Table(
    "appointments",
    metadata,
    sa.Column("appointment_id", sa.String(36), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("agent_id", sa.String(30), sa.ForeignKey("agents.agent_id"), nullable=False),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),
    sa.Column("office_address", sa.String(400), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, comment="reserve, annule, deplace"),
    sa.Column("booked_by", sa.String(20), nullable=False, comment="citoyen or agent"),
    sa.Column("booked_by_agent", sa.String(30), nullable=True),
    sa.Column("booked_at", UtcDateTime, nullable=False),
    sa.Column("cancelled_by", sa.String(20), nullable=True),
    sa.Column("cancelled_by_agent", sa.String(30), nullable=True),
    sa.Column("cancel_reason", PersonalText, nullable=True),  # may quote the citizen: sealed
    sa.Column("cancelled_at", UtcDateTime, nullable=True),
    sa.Column("reminded_at", UtcDateTime, nullable=True),
    sa.Column(
        "calendar_id",
        sa.String(36),
        nullable=True,
        comment="the first appointment of a chain of moves (one calendar entry)",
    ),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0", comment="moves so far"),
    sa.Index(
        "appointments_one_per_slot",
        "agent_id",
        "starts_at",
        unique=True,
        sqlite_where=BOOKED,
        postgresql_where=BOOKED,
    ),
)


@prepared
def file_row() -> sa.Select[Any]:
    """A file's row by its id (`params(file_id=…)`), built once: read by most of a file's
    events (guichet_runtime.statements)."""
    return sa.select(files).where(files.c.file_id == param(files.c.file_id))


@prepared
def file_row_locked() -> sa.Select[Any]:
    """`file_row()`, locked for the transaction (PostgreSQL)."""
    return file_row().with_for_update()


@prepared
def file_known() -> sa.Select[Any]:
    """A file's id if assignment knows the file (`params(file_id=…)`), built once."""
    return sa.select(files.c.file_id).where(files.c.file_id == param(files.c.file_id))
