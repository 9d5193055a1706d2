"""Reading back the PDF letters the tests receive (pypdf), shared by unit and e2e tests."""

from __future__ import annotations

import io

from pypdf import PdfReader


def pdf_text(data: bytes, separator: str = "\n") -> str:
    """The text of every page of a PDF, pages joined by `separator`."""
    return separator.join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
