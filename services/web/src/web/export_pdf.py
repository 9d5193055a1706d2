"""The citizen's data ("Mes données") as a readable PDF, in French, from the JSON export
intake serves with the parts assignment and notification hold (web.export_parts); fpdf2,
core fonts: windows-1252 covers every French letter."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any
from zoneinfo import ZoneInfo

from shared_models.wording import decision_label
from web.pages import AGENCY_STATUS, APPOINTMENT_STATUS, CHANNELS, FILE_STATUS

PARIS = ZoneInfo("Europe/Paris")
ENCODING = "windows-1252"
FIELDS = {
    "given_name": "Prénom",
    "family_name": "Nom",
    "email": "Adresse électronique",
    "phone": "Téléphone",
    "street": "Adresse",
    "postcode": "Code postal",
    "city": "Commune",
    "preferred_channel": "Canal préféré",
}


def printable(text: Any) -> str:
    """The text in the core fonts' encoding; other letters reduced to their base letter."""
    value = "" if text is None else str(text)
    out = []
    for char in value:
        try:
            char.encode(ENCODING)
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
            out.append(base or "?")
    return "".join(out)


def when(value: Any) -> str:
    """A moment of the export (ISO text) as the citizen reads it, in Paris time."""
    if not value:
        return "—"
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%d/%m/%Y")
    return moment.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


class Document:
    def __init__(self) -> None:
        # Imported at the first export: fpdf (with fontTools) is 52 MB of memory that the
        # web service does not need for its pages.
        from fpdf import FPDF  # noqa: PLC0415

        self.pdf = FPDF(format="A4")
        self.pdf.core_fonts_encoding = ENCODING
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.add_page()

    def title(self, text: str) -> None:
        self.pdf.set_font("helvetica", "B", 15)
        self.pdf.multi_cell(0, 8, printable(text), new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(2)

    def heading(self, text: str) -> None:
        self.pdf.ln(2)
        self.pdf.set_font("helvetica", "B", 12)
        self.pdf.multi_cell(0, 7, printable(text), new_x="LMARGIN", new_y="NEXT")

    def line(self, text: str, bold_label: str | None = None) -> None:
        self.pdf.set_font("helvetica", "", 10)
        shown = f"{bold_label} : {text}" if bold_label else text
        self.pdf.multi_cell(0, 5, printable(shown), new_x="LMARGIN", new_y="NEXT")

    def bytes(self) -> bytes:
        return bytes(self.pdf.output())


def _state(agency: dict[str, Any]) -> str:
    """An agency's decision (or where it stands) in words."""
    if agency.get("decision"):
        try:
            return decision_label(agency["decision"])
        except ValueError:
            return str(agency["decision"])
    status = str(agency.get("status"))
    return AGENCY_STATUS.get(status, (status, ""))[0]


def _file(doc: Document, f: dict[str, Any]) -> None:
    doc.heading(f"Dossier {f['file_id']} : {f['life_event_label']}")
    doc.line(when(f.get("created_at")), "Déposé le")
    status = str(f.get("status"))
    doc.line(FILE_STATUS.get(status, (status, ""))[0], "État")
    if f.get("erased_at"):
        doc.line(when(f["erased_at"]), "Données personnelles effacées le")
    contact = f.get("contact") or {}
    for key, label in FIELDS.items():
        if contact.get(key):
            value = str(contact[key])
            doc.line(CHANNELS.get(value, value) if key == "preferred_channel" else value, label)
    if f.get("description"):
        doc.line(f["description"], "Votre description")
    referent = f.get("referent") or {}
    if referent.get("name"):
        doc.line(f"{referent['name']} ({referent.get('phone', '')})", "Votre référent")
    if f.get("referent_change"):
        doc.line(f["referent_change"].get("reason") or "", "Changement de référent demandé")
    doc.heading("Organismes et données transmises")
    for a in f.get("agencies", []):
        sent = ", ".join(a.get("fields_sent") or []) or "aucune donnée"
        doc.line(f"{a['label']} : {_state(a)} ; a reçu : {sent}.")
    if f.get("notifications"):
        doc.heading("Messages qui vous ont été envoyés")
        for n in f["notifications"]:
            doc.line(f"{when(n['at'])} : {n['label']}")
    if f.get("referent_messages"):
        doc.heading("Messages de votre référent")
        for m in f["referent_messages"]:
            doc.line(f"{when(m['at'])}, {m['agent_name']} : {m['text']}")
    if f.get("documents"):
        doc.heading("Pièces envoyées")
        for d in f["documents"]:
            doc.line(f"{when(d['uploaded_at'])} : {d['filename']} ({d['size_bytes']} octets)")
    if f.get("survey"):
        s = f["survey"]
        doc.line(f"{s['score']}/5 {s.get('comment') or ''}".strip(), "Votre avis")
    for t in f.get("thanks", []):
        doc.line(f"à {t['agent_name']} : {t['message']}", "Remerciement")
    if f.get("timeline"):
        doc.heading("Chronologie")
        for entry in f["timeline"]:
            doc.line(f"{when(entry['at'])} : {entry['label']}")
    _parts(doc, f.get("parties") or {})


def _parts(doc: Document, parts: dict[str, Any]) -> None:
    """What assignment and notification hold about the file (web.export_parts)."""
    held = parts.get("assignment") or {}
    if held.get("held"):
        doc.heading("Chez le service d'attribution du référent")
        for r in held.get("referents", []):
            why = f" : {r['why']}" if r.get("why") else ""
            doc.line(f"{when(r['at'])}, {r['name']} ({r['office']}){why}", "Référent désigné")
        for a in held.get("agency_requests", []):
            answer = a.get("answer") or {}
            state = f" ; réponse : {_state(answer)}" if answer.get("decision") else ""
            doc.line(f"{a['agency']}, demandée le {when(a['issued_at'])}{state}", "Demande")
        if held.get("personal_word"):
            doc.line(held["personal_word"]["text"], "Mot de votre référent")
        for a in held.get("appointments", []):
            state = APPOINTMENT_STATUS.get(str(a.get("status")), str(a.get("status")))
            why = f" ; motif : {a['cancel_reason']}" if a.get("cancel_reason") else ""
            place = f"avec {a['referent']}, {a['office_address']}"
            doc.line(f"{when(a['starts_at'])}, {place} ({state.lower()}){why}", "Rendez-vous")
    sent = parts.get("notification") or {}
    if sent.get("messages"):
        doc.heading("Messages enregistrés par le service des notifications")
        for m in sent["messages"]:
            channel = CHANNELS.get(str(m["channel"]), str(m["channel"]))
            address = f" à {m['address']}" if m.get("address") else ""
            doc.line(f"{when(m['recorded_at'])}, {channel}{address} : {m['subject']}")
            doc.line(m["body"])


def render_export(export: dict[str, Any]) -> bytes:
    """The export as a PDF: where the data is held, then each file."""
    doc = Document()
    doc.title("Mes données : tout ce que le guichet unique conserve sur vous")
    doc.line(when(export.get("generated_at")), "Document établi le")
    if export.get("parties_manquantes"):
        doc.heading("Document incomplet")
        for text in export["parties_manquantes"]:
            doc.line(text)
    doc.heading("Où sont vos données")
    for source in export.get("sources", []):
        doc.line(source["contenu"], source["service"].capitalize())
    files = export.get("files", [])
    if not files:
        doc.line("Aucun dossier n'est rattaché à votre compte.")
    for f in files:
        _file(doc, f)
    return doc.bytes()
