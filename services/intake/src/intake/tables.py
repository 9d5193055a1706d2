"""Intake's own database: the file record and the citizen's view of it."""

import sqlalchemy as sa

from guichet_runtime.audit import audit_tables
from guichet_runtime.db import BigIntId, UtcDateTime, messaging_tables, service_metadata
from guichet_runtime.personal_data import personal_data_key_refs_table
from guichet_runtime.rate_limits import rate_counters_table

metadata = service_metadata()
outbox, inbox = messaging_tables(metadata)
audit = audit_tables(metadata)
rate_counters = rate_counters_table(metadata)  # citizen-facing writes (settings.rate_limits)
# Which data key seals each file's personal data (guichet_runtime.personal_data).
personal_data_key_refs = personal_data_key_refs_table(metadata)

# The citizens' data keys (crypto-shredding, docs/data-protection.md): one per logged-in
# citizen (`subject`), one per contact for a citizen without an account (`subject` =
# "contact:" + a pseudonym of their email or phone), else one per file. The key rests wrapped
# with PERSONAL_DATA_KEK; shredding deletes it and keeps the row.
personal_data_keys = sa.Table(
    "personal_data_keys",
    metadata,
    sa.Column("key_id", sa.String(36), primary_key=True, comment="a random UUID"),
    sa.Column(
        "subject",
        sa.String(255),
        nullable=True,
        unique=True,
        comment="the logged-in citizen's `sub`; null: the key of one file",
    ),
    sa.Column(
        "wrapped_key",
        sa.LargeBinary,
        nullable=True,
        comment="AES-256-GCM under PERSONAL_DATA_KEK (nonce + ciphertext); null once shredded",
    ),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("shredded_at", UtcDateTime, nullable=True),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("file_id", sa.String(32), primary_key=True),
    sa.Column("life_event", sa.String(50), nullable=False),
    sa.Column("citizen", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("referent", sa.JSON, nullable=True),
    sa.Column(
        "covering_for",
        sa.JSON,
        nullable=True,
        comment="the absent référent's card while `referent` covers their absence",
    ),
    sa.Column("answer", sa.JSON, nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("request_digest", sa.String(64), nullable=True),
    sa.Column("referent_change_requested_at", UtcDateTime, nullable=True),
    sa.Column("referent_change_reason", sa.Text, nullable=True),
    # Who opened it (docs/security.md): the policies' file parties.
    sa.Column(
        "citizen_subject",
        sa.String(255),
        nullable=True,
        index=True,
        comment="the citizen's `sub` when they filed logged in",
    ),
    sa.Column(
        "registered_by",
        sa.String(50),
        nullable=True,
        index=True,
        comment="the front-desk agent who registered it for the citizen",
    ),
    sa.Column(
        "channel",
        sa.String(20),
        nullable=True,
        comment="en_ligne, guichet, telephone, courrier (null: filed before it was kept)",
    ),
    sa.Column(
        "erased_at",
        UtcDateTime,
        nullable=True,
        comment="when the citizen's personal data was erased (request or retention)",
    ),
)

file_agencies = sa.Table(
    "file_agencies",
    metadata,
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), primary_key=True),
    sa.Column("agency", sa.String(30), primary_key=True),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column(
        "requested_document",
        sa.JSON,
        nullable=True,
        comment="{request_id, code, label} while awaited",
    ),
    sa.Column(
        "due_on", sa.Date, nullable=True, comment="legal deadline of the agency's answer (Paris)"
    ),
    sa.Column(
        "deadline_state", sa.String(20), nullable=True, comment="en_cours, suspendu, sans_delai"
    ),
    sa.Column("deadline_rule", sa.String(30), nullable=True),
    # Indicators: the agency's final answer (by word or by silence), the first one recorded.
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Column(
        "answered_on",
        sa.Date,
        nullable=True,
        comment="Paris day of the answer, compared with due_on",
    ),
    sa.Column(
        "decision", sa.String(30), nullable=True, comment="accorde, refuse, acceptation_implicite…"
    ),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("document_id", sa.String(36), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("agency", sa.String(30), nullable=False),
    sa.Column("request_id", sa.String(60), nullable=False),
    sa.Column("code", sa.String(60), nullable=False),
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("media_type", sa.String(60), nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("uploaded_at", UtcDateTime, nullable=False),
)

exchanges = sa.Table(
    "exchanges",
    metadata,
    sa.Column("exchange_id", sa.String(36), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("agency", sa.String(30), nullable=False),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("purpose", sa.String(200), nullable=False),
    sa.Column("legal_basis", sa.String(300), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)

timeline = sa.Table(
    "timeline",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("label", sa.Text, nullable=False),
)

surveys = sa.Table(
    "surveys",
    metadata,
    sa.Column(
        "file_id",
        sa.String(32),
        sa.ForeignKey("files.file_id"),
        primary_key=True,
        comment="one answer per file",
    ),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("referent_reachable", sa.Boolean, nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("referent_agent_id", sa.String(50), nullable=True),
    sa.Column("answered_at", UtcDateTime, nullable=False),
)

thanks = sa.Table(
    "thanks",
    metadata,
    sa.Column("thanks_id", sa.String(36), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False),
    sa.Column("agent_id", sa.String(50), nullable=False, index=True),
    sa.Column("agent_name", sa.String(200), nullable=False),
    sa.Column(
        "office_id",
        sa.String(50),
        nullable=True,
        comment="the référent's office when thanked: its supervisors may read the thanks",
    ),
    sa.Column("citizen_given_name", sa.String(100), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("file_id", "agent_id", name="uq_thanks_file_agent"),
)

access_codes = sa.Table(
    "access_codes",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column(
        "code_hash",
        sa.String(64),
        nullable=False,
        comment="sha256 of salt + code; the code is never stored",
    ),
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("used_at", UtcDateTime, nullable=True),
    sa.Column(
        "proof_hash",
        sa.String(64),
        nullable=True,
        index=True,
        comment="sha256 of the proof given when the code was verified; never the proof",
    ),
    sa.Column("proof_expires_at", UtcDateTime, nullable=True),
)

referent_messages = sa.Table(
    "referent_messages",
    metadata,
    sa.Column("message_id", sa.String(36), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("agent_id", sa.String(50), nullable=False),
    sa.Column("agent_name", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column(
        "channel",
        sa.String(20),
        nullable=True,
        comment="channel that delivered it, once notification reports it",
    ),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
)


citizen_messages = sa.Table(
    "citizen_messages",
    metadata,
    sa.Column("message_id", sa.String(36), primary_key=True),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column(
        "answerer_id", sa.String(50), nullable=False, comment="who answers: référent or cover"
    ),
    sa.Column("answerer_name", sa.String(200), nullable=False),
    sa.Column(
        "covering_for_name",
        sa.String(200),
        nullable=True,
        comment="the absent référent the answerer covered when the message came",
    ),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column(
        "answer_due_at",
        UtcDateTime,
        nullable=True,
        comment="the answer-time promise (intake.domain.promise)",
    ),
    sa.Column(
        "answered_at",
        UtcDateTime,
        nullable=True,
        comment="the référent's next message to the citizen",
    ),
    sa.Column(
        "answer_delay_s",
        sa.Integer,
        nullable=True,
        comment="message -> the référent's next message, seconds: the published answer times",
    ),
    sa.Column(
        "channel",
        sa.String(20),
        nullable=True,
        comment="courriel: an email reply to the routing address; else the citizen space",
    ),
)

citizen_message_attachments = sa.Table(
    "citizen_message_attachments",
    metadata,
    sa.Column("attachment_id", sa.String(36), primary_key=True),
    sa.Column(
        "message_id",
        sa.String(36),
        sa.ForeignKey("citizen_messages.message_id"),
        nullable=False,
        index=True,
    ),
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), nullable=False),
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("media_type", sa.String(50), nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
)


file_metrics = sa.Table(
    "file_metrics",
    metadata,
    sa.Column("file_id", sa.String(32), sa.ForeignKey("files.file_id"), primary_key=True),
    sa.Column("submitted_at", UtcDateTime, nullable=False),
    sa.Column(
        "submitted_on",
        sa.Date,
        nullable=False,
        index=True,
        comment="Paris day: the indicators' period filter",
    ),
    sa.Column("first_referent_at", UtcDateTime, nullable=True),
    sa.Column(
        "referent_delay_s",
        sa.Integer,
        nullable=True,
        comment="submission -> first référent, seconds",
    ),
    sa.Column(
        "office_id", sa.String(50), nullable=True, index=True, comment="the first référent's office"
    ),
    sa.Column("office_name", sa.String(200), nullable=True),
    sa.Column("current_agent_id", sa.String(50), nullable=True),
    sa.Column("reassignments", sa.Integer, nullable=False, default=0),
    sa.Column("first_contact_at", UtcDateTime, nullable=True),
    sa.Column(
        "contact_delay_s",
        sa.Integer,
        nullable=True,
        comment="submission -> first message to the citizen",
    ),
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Column(
        "answer_delay_s",
        sa.Integer,
        nullable=True,
        comment="submission -> coordinated answer, seconds",
    ),
)
