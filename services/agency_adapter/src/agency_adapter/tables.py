"""An adapter's own database: its inbox and outbox."""

import sqlalchemy as sa

from guichet_runtime.db import messaging_tables, service_metadata

metadata = service_metadata()
outbox, inbox = messaging_tables(metadata)
