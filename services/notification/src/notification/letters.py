"""Infrastructure: postal letters as PDF (fpdf2), for the letter channel. The référent's
block (name, office, direct phone, email, opening hours) top left, the citizen's address
block (`domain.address_block`) top right where a window envelope shows it, the date, the
subject, then the signed text of the message."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shared_models import Referent

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
# The PDF core fonts cover windows-1252 (every French letter, œ, €, —, ’); anything else
# is reduced to its base letter rather than embedding a 700 kB font in every letter.
_ENCODING = "windows-1252"
# Letters with a stroke have no decomposition.
_STROKES = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "ı": "i", "ŧ": "t"})


@dataclass(frozen=True)
class Letter:
    file_id: str
    subject: str
    text: str
    referent: Referent
    address: tuple[str, ...]
    date: dt.date


def french_date(day: dt.date) -> str:
    return f"{day.day}{'er' if day.day == 1 else ''} {MONTHS[day.month - 1]} {day.year}"


def today_in_paris(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(PARIS).date()


def printable(text: str) -> str:
    try:
        text.encode(_ENCODING)
        return text
    except UnicodeEncodeError:
        out = []
        for char in text.translate(_STROKES):
            try:
                char.encode(_ENCODING)
                out.append(char)
            except UnicodeEncodeError:
                base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
                out.append(base or "?")
        return "".join(out)


def render_pdf(letter: Letter, city: str = "Paris") -> bytes:
    # Imported at the first letter: fpdf (with fontTools) is 52 MB of memory that a
    # notification service sending only e-mails and SMS never needs.
    from fpdf import FPDF  # noqa: PLC0415

    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = _ENCODING
    pdf.set_title(printable(letter.subject))
    pdf.set_author(printable(letter.referent.name))
    pdf.set_creator("Guichet unique")
    pdf.set_margins(20, 15, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    ref = letter.referent
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 6, "Guichet unique - France Services", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 10)
    for line in (
        f"Votre référent : {ref.name}",
        ref.office,
        f"Téléphone direct : {ref.phone}",
        f"Courriel : {ref.email}",
    ):
        pdf.cell(0, 5, printable(line), new_x="LMARGIN", new_y="NEXT")
    if ref.opening_hours:
        # Wrapped left of the envelope window, which starts 110 mm from the left edge.
        pdf.multi_cell(
            85, 5, printable(f"Accueil : {ref.opening_hours}"), new_x="LMARGIN", new_y="NEXT"
        )
    # Address block in the window of a DL envelope (right, about 50 mm from the top).
    pdf.set_xy(110, 50)
    pdf.set_font("helvetica", "", 11)
    for line in letter.address:
        pdf.set_x(110)
        pdf.cell(80, 6, printable(line), new_x="LMARGIN", new_y="NEXT")
    pdf.set_xy(110, 80)
    pdf.cell(80, 6, printable(f"Le {french_date(letter.date)}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(95)
    pdf.set_font("helvetica", "", 10)
    pdf.cell(
        0, 5, printable(f"Référence du dossier : {letter.file_id}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("helvetica", "B", 11)
    pdf.multi_cell(0, 6, printable(f"Objet : {letter.subject}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("helvetica", "", 11)
    pdf.multi_cell(
        0, 5.5, printable(letter.text.replace("\n--\n", "\n\n")), new_x="LMARGIN", new_y="NEXT"
    )
    return bytes(pdf.output())
