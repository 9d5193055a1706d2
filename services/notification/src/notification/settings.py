"""Notification's settings (environment variables, pydantic-settings)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from guichet_runtime.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    service_name: str = "notification"
    http_port: int = 8002
    database_url: str = "sqlite+aiosqlite:///var/data/notification.db"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    mail_sender: str = "Guichet unique <ne-pas-repondre@guichet-unique.gouv.fr>"
    sms_gateway_url: str = "http://127.0.0.1:8027"
    sms_sender_name: str = "GUICHET"
    postal_url: str = "http://127.0.0.1:8027"
    portal_url: str = "https://guichet-unique.gouv.fr"
    dispatch_idle_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the dispatcher looks for messages falling due (a retry, a "
        "planned reminder, a lease run out) when nothing woke it: a message recorded by this "
        "process wakes it at once.",
    )
    dispatch_batch: int = 50
    dispatch_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a claimed message is left to its sender before another sender "
        "(a replica, or this one after a crash) takes it up again with the key it recorded.",
    )
    letter_delivery_days: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Working days a letter takes from its posting to the citizen's letter box "
        "(La Poste's « lettre verte »: 3); an appointment's reminder letter is posted that many "
        "working days before the eve (Monday to Friday, public holidays excluded).",
    )
    access_code_key: SecretStr = Field(
        default=SecretStr(""),
        description="Opens the access codes intake seals (AES-256-GCM; base64 of 32 bytes, the "
        "same value as intake's). No default: notification refuses to start without it.",
    )
    access_code_key_previous: SecretStr = Field(
        default=SecretStr(""),
        description="Earlier keys still opened during a rotation (base64, comma separated).",
    )
    reply_address_key: SecretStr = Field(
        default=SecretStr(""),
        description="Signs the routing address a citizen's email reply goes to (HMAC-SHA256; "
        "the same value as intake's). Not set: the emails carry no Reply-To.",
    )
    reply_domain: str = Field(
        default="reponse.guichet-unique.gouv.fr",
        description="The domain of the routing addresses (its MX is intake's inbound SMTP).",
    )
