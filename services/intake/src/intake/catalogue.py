"""Life events a citizen can declare, and the agencies each one concerns."""

from dataclasses import dataclass

from shared_models import Agency


@dataclass(frozen=True)
class LifeEvent:
    code: str
    label: str
    agencies: tuple[Agency, ...]


CATALOGUE: dict[str, LifeEvent] = {
    e.code: e
    for e in (
        LifeEvent(
            "perte_emploi",
            "Perte d'emploi",
            (Agency.FRANCE_TRAVAIL, Agency.CAF, Agency.DGFIP),
        ),
        LifeEvent("naissance", "Naissance d'un enfant", (Agency.CAF, Agency.CPAM)),
        LifeEvent("demenagement", "Déménagement", (Agency.CAF, Agency.DGFIP, Agency.CPAM)),
        LifeEvent("arret_maladie", "Arrêt de travail pour maladie", (Agency.CPAM, Agency.CAF)),
    )
}
