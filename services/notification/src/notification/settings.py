"""Notification's settings (environment variables, pydantic-settings)."""

from __future__ import annotations

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
    dispatch_idle_seconds: float = 0.2
    dispatch_batch: int = 50
