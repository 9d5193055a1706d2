"""What an adapter declares about its agency: the procedures it handles, the citizen
data it needs, the legal-deadline rule, and what allows the transmission."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared_models import AGENCY_CODE, CITIZEN_FIELDS, Catalogue, DeadlineRule

__all__ = [
    "CITIZEN_FIELDS",
    "Declaration",
    "catalogue_problems",
    "citizen_fields_problems",
    "declaration_problems",
]


class Declaration(BaseModel):
    """One agency's declaration. The contract test kit checks it; the runtime refuses to
    start an adapter whose declaration breaks a rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agency: str = Field(description="Agency code (lower case, as in topics): caf, dgfip, ants…")
    label: str = Field(description="Name of the agency in French.")
    life_events: tuple[str, ...] = Field(description="Life events (procedures) the agency handles.")
    citizen_fields: frozenset[str] = Field(
        description="The only citizen fields sent to the agency."
    )
    deadline_rule: DeadlineRule = Field(
        description="What the agency's silence means at the end of the period."
    )
    deadline_months: int | None = Field(
        default=None, description="Legal period in calendar months (the CRPA's two months), if any."
    )
    deadline_days: int | None = Field(
        default=None,
        description="Legal period in calendar days, only where the procedure counts days.",
    )
    legal_basis: str = Field(description="Legal text allowing the transmission, in French.")
    purpose: str = Field(description="Why the data is transmitted, in French.")
    asynchronous: bool = Field(
        default=False, description="The agency answers later, through a callback."
    )
    accepts_documents: bool = Field(
        default=False, description="The agency may ask for supporting documents."
    )


def declaration_problems(decl: Declaration) -> list[str]:
    """The rules a declaration breaks, in plain words (empty: none)."""
    problems = []
    if not AGENCY_CODE.match(decl.agency):
        problems.append(
            f"Le code d'organisme « {decl.agency} » est invalide : lettres minuscules, chiffres "
            "et _ uniquement."
        )
    if not decl.life_events:
        problems.append("La déclaration ne liste aucun événement de vie (démarche) traité.")
    unknown = sorted(decl.citizen_fields - set(CITIZEN_FIELDS))
    if unknown:
        problems.append(
            f"Champs citoyen inconnus déclarés : {', '.join(unknown)} (connus : "
            f"{', '.join(CITIZEN_FIELDS)})."
        )
    if not decl.citizen_fields:
        problems.append(
            "La déclaration ne demande aucun champ citoyen : l'organisme ne pourrait identifier "
            "personne."
        )
    silence = decl.deadline_rule in (DeadlineRule.SILENCE_ACCEPTS, DeadlineRule.SILENCE_REJECTS)
    if silence and not (decl.deadline_months or decl.deadline_days):
        problems.append(
            f"La règle « {decl.deadline_rule.value} » exige un délai légal, en mois "
            "(deadline_months)"
            " ou en jours (deadline_days)."
        )
    if decl.deadline_months is not None and decl.deadline_days is not None:
        problems.append(
            "Le délai légal se compte en mois ou en jours, pas les deux : retirez l'un des deux."
        )
    if decl.deadline_months is not None and decl.deadline_months <= 0:
        problems.append("Le délai légal doit être un nombre de mois positif.")
    if decl.deadline_days is not None and decl.deadline_days <= 0:
        problems.append("Le délai légal doit être un nombre de jours positif.")
    if decl.deadline_rule is DeadlineRule.NONE and (decl.deadline_days or decl.deadline_months):
        problems.append(
            "La règle « aucune » ne prend pas de délai : retirez deadline_months/deadline_days ou "
            "changez de règle."
        )
    if len(decl.legal_basis.strip()) < 5:
        problems.append("La base légale de la transmission est absente (legal_basis).")
    if len(decl.purpose.strip()) < 5:
        problems.append("La finalité de la transmission est absente (purpose).")
    return problems


def catalogue_problems(decl: Declaration, catalogue: Catalogue) -> list[str]:
    """Where the declaration disagrees with the guichet's catalogue (empty: nowhere).

    The catalogue names the agency and says which life events reach it; the adapter must
    carry the same name and handle every one of those life events. It may declare more
    (procedures the guichet does not offer yet)."""
    label = catalogue.agencies.get(decl.agency)
    if label is None:
        return [
            f"L'organisme « {decl.agency} » est absent du catalogue du guichet : ajoutez-le à "
            f"[agencies] (code et libellé), puis les événements de vie qui le concernent."
        ]
    problems = []
    if decl.label != label:
        problems.append(
            f"Le libellé déclaré « {decl.label} » diffère de celui du catalogue « {label} »."
        )
    missing = [e for e in catalogue.life_events_of(decl.agency) if e not in decl.life_events]
    if missing:
        problems.append(
            f"Le catalogue adresse à l'organisme des dossiers que la déclaration ne traite pas : "
            f"{', '.join(missing)} (ajoutez-les à life_events)."
        )
    problems.extend(citizen_fields_problems(decl, catalogue))
    return problems


def citizen_fields_problems(decl: Declaration, catalogue: Catalogue) -> list[str]:
    """Where the declared citizen fields differ from the catalogue's list for the agency: the
    core puts on the agency's topic only the catalogue's fields, so the adapter must declare
    exactly those (one missing from the catalogue never reaches it; one missing from the
    declaration would travel for nothing)."""
    listed = frozenset(catalogue.citizen_fields.get(decl.agency, ()))
    problems = []
    unsent = sorted(decl.citizen_fields - listed)
    if unsent:
        problems.append(
            f"Champs citoyen déclarés que le catalogue ne transmet pas à l'organisme : "
            f"{', '.join(unsent)} (ajoutez-les à [citizen_fields] du catalogue, ou retirez-les "
            f"de citizen_fields)."
        )
    unused = sorted(listed - decl.citizen_fields)
    if unused:
        problems.append(
            f"Champs citoyen transmis par le catalogue que la déclaration ne demande pas : "
            f"{', '.join(unused)} (retirez-les de [citizen_fields] du catalogue : ils "
            f"voyageraient pour rien)."
        )
    return problems
