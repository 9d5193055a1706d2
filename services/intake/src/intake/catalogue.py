"""Life events a citizen can declare, and the agencies each one concerns: read from the
shared catalogue file (shared_models.catalogue, GUICHET_CATALOGUE), not written here."""

from shared_models.catalogue import LIFE_EVENTS, LifeEvent

#: Life event code -> LifeEvent (code, label, agencies), read-only.
CATALOGUE = LIFE_EVENTS

__all__ = ["CATALOGUE", "LifeEvent"]
