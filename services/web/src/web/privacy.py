"""The privacy notice (RGPD art. 13): one source text, shown on `/confidentialite`,
summarised on the submission pages and printed on the counter's receipt. The recipients come
from the catalogue (the agencies a file may go to), the periods from
`shared_models.retention`: the notice cannot drift from what the system does."""

from __future__ import annotations

from dataclasses import dataclass

from shared_models import catalogue
from shared_models.retention import PERIODS, DataKind

CONTROLLER = (
    "Le guichet unique des services publics, opéré par l'Agence nationale de la cohésion des "
    "territoires (ANCT) pour le réseau France Services, 20 avenue de Ségur, 75007 Paris."
)
DPO = (
    "Délégué à la protection des données : dpd@guichet-unique.gouv.fr, ou par courrier à "
    "l'adresse ci-dessus."
)
CNIL = (
    "Si vous estimez que vos droits ne sont pas respectés, vous pouvez adresser une réclamation "
    "à la CNIL (www.cnil.fr, 3 place de Fontenoy, TSA 80715, 75334 Paris Cedex 07)."
)
PURPOSES = [
    (
        "Instruire votre changement de situation : désigner votre référent, transmettre votre "
        "dossier aux organismes concernés, vous envoyer leur réponse coordonnée.",
        "Mission d'intérêt public (RGPD, art. 6.1.e), loi n° 2000-321 du 12 avril 2000 et code "
        "des relations entre le public et l'administration.",
    ),
    (
        "Vous contacter sur le canal que vous avez choisi (courriel, SMS, courrier, téléphone).",
        "Mission d'intérêt public (RGPD, art. 6.1.e).",
    ),
    (
        "Publier des indicateurs de qualité de service, sans aucune donnée personnelle.",
        "Mission d'intérêt public (RGPD, art. 6.1.e) ; données rendues anonymes.",
    ),
    (
        "Garder la trace des accès des agents à votre dossier (journal d'audit).",
        "Obligation légale de sécurité (RGPD, art. 32).",
    ),
]
RIGHTS = [
    "Accès et copie : téléchargez toutes vos données (« Mes données ») depuis votre espace ou "
    "depuis votre dossier ouvert avec un code.",
    "Rectification : modifiez vos coordonnées depuis votre dossier, ou demandez-le à votre "
    "référent.",
    "Effacement : une fois votre dossier clos, demandez l'effacement depuis votre dossier. Tant "
    "qu'il est en cours de traitement, l'administration doit conserver vos données (RGPD, "
    "art. 17.3.b).",
    "Limitation et opposition : écrivez au délégué à la protection des données.",
]


@dataclass(frozen=True)
class Retention:
    what: str
    days: int
    counted_from: str


def _duration(days: int) -> str:
    if days % 365 == 0:
        years = days // 365
        return f"{years} an{'s' if years > 1 else ''}"
    return f"{days} jour{'s' if days > 1 else ''}"


RETAINED = {
    DataKind.CLOSED_FILES: "Votre dossier (coordonnées, description, messages)",
    DataKind.DOCUMENTS: "Les pièces justificatives envoyées",
    DataKind.ACCESS_CODES: "Les codes d'accès à usage unique",
    DataKind.AUDIT_TRAIL: "Le journal des accès des agents",
}


def retention_lines() -> list[str]:
    """How long each kind of data is kept, in French, from the declared periods."""
    lines = []
    for kind, what in RETAINED.items():
        period = PERIODS[kind]
        lines.append(f"{what} : {_duration(period.days)} après {period.counted_from}.")
    return lines


def recipients() -> list[str]:
    """The agencies a file may go to (the catalogue's), each receiving only its fields."""
    known = catalogue()
    return [known.agencies[code] for code in known.served_agencies()]


def notice() -> dict[str, object]:
    """The notice, as the templates render it."""
    return {
        "controller": CONTROLLER,
        "purposes": PURPOSES,
        "recipients": recipients(),
        "retention": retention_lines(),
        "rights": RIGHTS,
        "dpo": DPO,
        "cnil": CNIL,
    }
