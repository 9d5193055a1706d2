"""The administrations a citizen file can involve."""

from enum import StrEnum


class Agency(StrEnum):
    """Code of a partner administration, as used in topics and events."""

    CAF = "caf"
    DGFIP = "dgfip"
    FRANCE_TRAVAIL = "france_travail"
    CPAM = "cpam"


#: Names shown to citizens and agents.
AGENCY_LABELS: dict[Agency, str] = {
    Agency.CAF: "Caisse d'allocations familiales (CAF)",
    Agency.DGFIP: "Direction générale des Finances publiques (DGFiP)",
    Agency.FRANCE_TRAVAIL: "France Travail",
    Agency.CPAM: "Caisse primaire d'assurance maladie (CPAM)",
}
