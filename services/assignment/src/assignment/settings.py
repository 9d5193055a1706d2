"""Settings of the assignment service (environment variables, see ServiceSettings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from assignment.domain import STUCK_REQUEST_DAYS
from assignment.scheduling import DEFAULT_HORIZON_DAYS, DEFAULT_SLOT_MINUTES
from guichet_runtime.settings import ServiceSettings

DEFAULT_DIRECTORY = Path(__file__).parent / "data" / "directory.json"


class AssignmentSettings(ServiceSettings):
    service_name: str = "assignment"
    http_port: int = 8001
    database_url: str = "sqlite+aiosqlite:///var/data/assignment.db"
    housekeeping_seconds: float = Field(
        default=5.0, description="How often due absences and waiting files are looked at."
    )
    directory_file: Path = Field(
        default=DEFAULT_DIRECTORY, description="Agents and offices loaded into an empty directory."
    )
    stuck_request_days: int = Field(
        default=STUCK_REQUEST_DAYS,
        ge=1,
        description="An agency request acknowledged this many days ago or more without a "
        "decision is stuck: listed to the supervisors and shown on the référent's file. The "
        "adapters' gauge adapter_requests_overdue counts the same with OVERDUE_SECONDS.",
    )
    appointment_slot_minutes: int = Field(
        default=DEFAULT_SLOT_MINUTES,
        ge=10,
        le=240,
        description="Length of an appointment with the référent, in minutes.",
    )
    appointment_horizon_days: int = Field(
        default=DEFAULT_HORIZON_DAYS,
        ge=1,
        le=366,
        description="How many days ahead (from tomorrow) appointments can be booked.",
    )
