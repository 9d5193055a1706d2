"""Rendering: the Jinja2 environment, French dates and labels, the accessible charts."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from shared_models import AGENCY_LABELS, wording
from shared_models.wording import decision_label, euros_fr
from web import privacy
from web.forms import LABELS
from web.login import principal_of
from web.security import csrf_token

PARIS = ZoneInfo("Europe/Paris")
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

# Statuses in words (never by colour alone) and the DSFR badge that goes with each.
FILE_STATUS = {
    "depose": ("Déposé", "info"),
    "en_cours": ("En cours", "new"),
    "en_attente_attribution": ("En attente d'un référent", "warning"),
    "repondu": ("Réponse envoyée", "success"),
}
AGENCY_STATUS = {
    "en_attente": ("En attente de transmission", "info"),
    "transmis": ("Transmis, en cours d'examen", "new"),
    "piece_demandee": ("Pièce justificative attendue", "warning"),
    "piece_envoyee": ("Pièce transmise, en cours d'examen", "new"),
    "repondu": ("Réponse reçue", "success"),
}
SCORES = [
    (str(n), f"{n} — {words}", None)
    for n, words in (
        (1, "pas du tout satisfait(e)"),
        (2, "peu satisfait(e)"),
        (3, "moyennement satisfait(e)"),
        (4, "satisfait(e)"),
        (5, "très satisfait(e)"),
    )
]
CHANNEL_OPTIONS = [
    ("email", "Par courriel", None),
    ("sms", "Par SMS", None),
    ("telephone", "Par téléphone", "Vous recevez aussi chaque message par courrier."),
    ("courrier", "Par courrier postal", None),
]
EXCHANGE_DIRECTION = {"envoi": "Envoyé à l'organisme", "reception": "Reçu de l'organisme"}
CHANNELS = {
    "email": "Courriel",
    "sms": "SMS",
    "courrier": "Courrier postal",
    "telephone": "Téléphone",
}
#: How a file came in (intake's channel), in words.
INTAKE_CHANNELS = {
    "en_ligne": "En ligne",
    "guichet": "Au guichet",
    "telephone": "Au téléphone",
    "courrier": "Par courrier",
}
AGENT_STATUS = {"actif": "En poste", "absent": "Absent(e)", "parti": "Parti(e)"}


def _as_datetime(value: Any) -> dt.datetime | dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return (
                dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value)
            )
        except ValueError:
            return None
    return value


def date_fr(value: Any) -> str:
    """24 novembre 2026."""
    d = _as_datetime(value)
    if d is None:
        return ""
    if isinstance(d, dt.datetime):
        d = d.astimezone(PARIS).date()
    return f"{d.day}{'er' if d.day == 1 else ''} {MONTHS[d.month - 1]} {d.year}"


def datetime_fr(value: Any) -> str:
    """24 novembre 2026 à 18h07 (Paris)."""
    d = _as_datetime(value)
    if not isinstance(d, dt.datetime):
        return date_fr(value)
    local = d.astimezone(PARIS)
    return f"{date_fr(local)} à {local.hour}h{local.minute:02d}"


#: An appointment's status, in words.
APPOINTMENT_STATUS = {"reserve": "Réservé", "annule": "Annulé", "deplace": "Déplacé"}
NBSP = "\u00a0"


def time_fr(value: Any) -> str:
    """9 h 30, 14 h (Paris), with non-breaking spaces."""
    d = _as_datetime(value)
    if not isinstance(d, dt.datetime):
        return ""
    local = d.astimezone(PARIS)
    minutes = f"{NBSP}{local.minute:02d}" if local.minute else ""
    return f"{local.hour}{NBSP}h{minutes}"


def day_fr(value: Any) -> str:
    """mardi 2 mars 2027 (a datetime's day in Paris)."""
    d = _as_datetime(value)
    if d is None:
        return ""
    if isinstance(d, dt.datetime):
        d = d.astimezone(PARIS).date()
    return wording.day_fr(d)


def when_fr(value: Any) -> str:
    """mardi 2 mars 2027 à 9 h 30: an appointment's time, in Paris."""
    return f"{day_fr(value)} à {time_fr(value)}" if time_fr(value) else ""


def initials(name: str) -> str:
    return "".join(part[0] for part in name.split()[:2]).upper()


def phone_fr(value: str | None) -> str:
    """0478123456 -> 04 78 12 34 56 (other forms are shown as given)."""
    if value and len(value) == 10 and value.isdigit():
        return " ".join(value[i : i + 2] for i in range(0, 10, 2))
    return value or ""


def size_fr(size: int) -> str:
    """820 octets, 12 Ko, 1,5 Mo."""
    if size < 1024:
        return f"{size} octet{'s' if size > 1 else ''}"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} Ko"
    return f"{size / (1024 * 1024):.1f} Mo".replace(".", ",")


def requested_documents(agencies: list[dict]) -> list[dict]:
    """The documents agencies wait for from the citizen, each with who asked."""
    return [
        {
            "agency": a["agency"],
            "agency_label": a["label"],
            "label": a["requested_document"]["label"],
        }
        for a in agencies
        if a.get("requested_document")
    ]


def load_chart(agents: list[dict]) -> dict:
    """Bars of each agent's load against capacity, for a server-rendered SVG (with a table
    beside it carrying the same figures)."""
    active = [a for a in agents if a["status"] != "parti"]
    bar_h, gap, label_w, width = 22, 10, 230, 640
    rows = []
    for i, a in enumerate(active):
        share = a["active_files"] / a["capacity"] if a["capacity"] else 0
        rows.append(
            {
                "y": i * (bar_h + gap),
                "label": a["name"],
                "office": a["office"],
                "share": share,
                "w": round((width - label_w - 90) * min(share, 1.0)),
                "text": f"{a['active_files']} / {a['capacity']}",
                "full": share >= 0.9,
            }
        )
    return {
        "rows": rows,
        "height": max(len(rows) * (bar_h + gap), bar_h),
        "bar_h": bar_h,
        "label_w": label_w,
        "width": width,
        "track": width - label_w - 90,
    }


def agency_label(code: str) -> str:
    """Short name of an agency for tables, from the catalogue's name: its acronym in
    brackets when it has one (« … (CAF) » -> CAF), else the whole name; an agency the
    catalogue does not name shows its code."""
    name = AGENCY_LABELS.get(code)
    if name is None:
        return code.replace("_", " ").upper()
    acronym = re.search(r"\(([^()]+)\)\s*$", name)
    return acronym.group(1) if acronym else name


def indicator_chart(rows: list[dict], key: str, unit: str, maximum: float | None = None) -> dict:
    """Bars of one indicator across offices or agencies, for a server-rendered SVG; only the
    published groups with a value are drawn (the table beside it holds every group)."""
    shown = [r for r in rows if r.get("published") and r.get(key) is not None]
    bar_h, gap, label_w, width = 22, 10, 300, 640
    track = width - label_w - 110
    top = maximum if maximum is not None else max((r[key] for r in shown), default=0)
    bars = []
    for i, r in enumerate(shown):
        value = r[key]
        bars.append(
            {
                "y": i * (bar_h + gap),
                "label": r["label"],
                "text": number_fr(value, unit),
                "w": round(track * min(value / top, 1.0)) if top else 0,
            }
        )
    return {
        "rows": bars,
        "height": max(len(bars) * (bar_h + gap), bar_h),
        "bar_h": bar_h,
        "label_w": label_w,
        "width": width,
        "track": track,
    }


def number_fr(value: Any, unit: str = "") -> str:
    """4.5 -> '4,5 j'; a share 0.667 with unit '%' -> '67 %'; nothing measured -> '—'."""
    if value is None:
        return "—"
    if unit == "%":
        return f"{round(value * 100)} %"
    text = f"{value:g}".replace(".", ",")
    return f"{text} {unit}" if unit else text


def labels_by_agency(agencies: list[dict]) -> dict[str, str]:
    return {a["agency"]: a["label"] for a in agencies}


class Renderer:
    """Renders a page with the messages flashed for this browser and the current path."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("web", "templates"),
            autoescape=select_autoescape(("html",)),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            date_fr=date_fr,
            datetime_fr=datetime_fr,
            day_fr=day_fr,
            time_fr=time_fr,
            when_fr=when_fr,
            initials=initials,
            euros_fr=euros_fr,
            phone_fr=phone_fr,
            size_fr=size_fr,
            agency_label=agency_label,
            number_fr=number_fr,
            decision_label=decision_label,
            labels_by_agency=labels_by_agency,
        )
        self.env.globals.update(
            LABELS=LABELS,
            FILE_STATUS=FILE_STATUS,
            AGENCY_STATUS=AGENCY_STATUS,
            CHANNELS=CHANNELS,
            INTAKE_CHANNELS=INTAKE_CHANNELS,
            AGENT_STATUS=AGENT_STATUS,
            APPOINTMENT_STATUS=APPOINTMENT_STATUS,
            EXCHANGE_DIRECTION=EXCHANGE_DIRECTION,
            SCORES=SCORES,
            CHANNEL_OPTIONS=CHANNEL_OPTIONS,
            PRIVACY=privacy.notice(),
            # Each page's own (see __call__); these only serve templates rendered alone.
            visitor=principal_of(None),
            csrf_token=lambda: "",
        )

    def __call__(
        self, request: Request, template: str, context: dict, status_code: int = 200
    ) -> HTMLResponse:
        session: dict | None = request.scope.get("session")
        flashes = session.pop("flash", []) if session is not None else []

        def form_token() -> str:
            """The session's CSRF token, for the hidden field of every form."""
            return csrf_token(session) if session is not None else ""

        html = self.env.get_template(template).render(
            request=request,
            flashes=flashes,
            path=request.url.path,
            visitor=principal_of(session.get("login") if session is not None else None),
            csrf_token=form_token,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)
