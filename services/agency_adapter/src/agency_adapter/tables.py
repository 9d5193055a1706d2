"""An adapter's own database: its inbox and outbox."""

import sqlalchemy as sa

from guichet_runtime.db import messaging_tables

metadata = sa.MetaData()
outbox, inbox = messaging_tables(metadata)
