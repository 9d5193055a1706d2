"""Intake's settings (environment variables, see guichet_runtime.settings)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from guichet_runtime.body_limit import MULTIPART_OVERHEAD_BYTES
from guichet_runtime.rate_limits import RateLimit
from guichet_runtime.settings import ServiceSettings
from intake.domain import DEFAULT_MIN_FILES, MAX_DOCUMENT_BYTES
from intake.domain.promise import DEFAULT_WORKING_DAYS

#: Rate limits of the citizen-facing writes (docs/security.md, "Limits and secrets"):
#: rule -> "count/period". Per client: by the caller's address; per file: by file id.
DEFAULT_RATE_LIMITS: dict[str, str] = {
    "files_per_client": "20/hour",
    "access_codes_per_client": "10/hour",
    "access_codes_per_file": "10/day",  # on top of the domain's 3 codes per 15 minutes
    "code_checks_per_client": "30/hour",  # on top of the 5 tries per code
    "referent_changes_per_client": "5/hour",
    "surveys_per_client": "10/hour",
    "thanks_per_client": "10/hour",
    "thanks_per_file": "5/day",
    "messages_per_client": "60/hour",
    "messages_per_file": "30/day",
    "citizen_messages_per_client": "60/hour",
    "citizen_messages_per_file": "20/day",
    "contact_changes_per_client": "10/hour",
    "contact_changes_per_file": "5/day",
    "documents_per_client": "30/hour",
}
#: The upload route reads up to twice the document limit (so a document a little too large
#: gets the precise "Le fichier dépasse 512 Ko."), plus its multipart envelope.
DOCUMENT_BODY_BYTES = 2 * MAX_DOCUMENT_BYTES + MULTIPART_OVERHEAD_BYTES


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8000
    database_url: str = "sqlite+aiosqlite:///var/data/intake.db"
    indicators_min_files: int = Field(
        default=DEFAULT_MIN_FILES,
        ge=1,
        description="Published indicators leave out groups of fewer files (and means of fewer "
        "survey answers).",
    )
    message_answer_working_days: int = Field(
        default=DEFAULT_WORKING_DAYS,
        ge=1,
        le=10,
        description="The answer-time promise to a citizen who writes to their référent: an "
        "answer by the end of this many working days after the day of the message (Paris "
        "calendar, public holidays of metropolitan France).",
    )
    indicators_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long computed indicators are served again before being recomputed.",
    )
    access_code_key: SecretStr = Field(
        default=SecretStr(""),
        description="Seals the one-time access codes for the notification service (AES-256-GCM; "
        "base64 of 32 bytes, the same value as notification's). No default: intake refuses "
        "to start without it.",
    )
    personal_data_sealing: bool = Field(
        default=True,
        description="Crypto-shredding: each citizen gets a data key, and their personal fields "
        "travel sealed with it on every topic (docs/data-protection.md). Off: in clear.",
    )
    personal_data_kek: SecretStr | None = Field(
        default=None,
        description="The key-encryption key the citizens' data keys rest wrapped with "
        "(AES-256-GCM; base64 of 32 bytes). Required outside dev; generated once in "
        "SECRETS_DIR in dev.",
    )
    inbound_smtp_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Listen for the citizens' email replies on this port (SMTP; the MX of "
        "REPLY_DOMAIN relays to it). Not set: no inbound SMTP, replies only from the space.",
    )
    inbound_smtp_host: str = Field(
        default="127.0.0.1", description="The address the inbound SMTP listener binds."
    )
    reply_address_key: SecretStr = Field(
        default=SecretStr(""),
        description="Verifies the routing address of an email reply (HMAC-SHA256; the same "
        "value as notification's). Required with INBOUND_SMTP_PORT.",
    )
    reply_address_key_previous: SecretStr = Field(
        default=SecretStr(""),
        description="The reply-address key before a rotation: the addresses it signed still "
        "verify while it is set (docs/operations.md, 'Rotating REPLY_ADDRESS_KEY').",
    )
    reply_domain: str = Field(
        default="reponse.guichet-unique.gouv.fr",
        description="The domain of the routing addresses (the same as notification's).",
    )

    rate_limits: dict[str, RateLimit] = Field(
        default_factory=lambda: {k: RateLimit.parse(v) for k, v in DEFAULT_RATE_LIMITS.items()},
        description="Rate limits of the citizen-facing writes, JSON object rule -> 'count/period' "
        "(e.g. '5/hour'; '0/hour' switches a rule off); rules not given keep their default.",
    )

    @field_validator("rate_limits", mode="after")
    @classmethod
    def _keep_defaults(cls, given: dict[str, RateLimit]) -> dict[str, RateLimit]:
        unknown = given.keys() - DEFAULT_RATE_LIMITS.keys()
        if unknown:
            raise ValueError(f"unknown rate limit rules: {sorted(unknown)}")
        return {**{k: RateLimit.parse(v) for k, v in DEFAULT_RATE_LIMITS.items()}, **given}
