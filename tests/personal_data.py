"""Probes for a citizen's personal data in the bytes that travel (issue 18 §3): a value is
looked for in every form it may take on the way, not only as the citizen typed it.

- the phone: its nine significant digits with any spaces, dots or dashes between them, so
  `06 12 34 56 78` as typed, `0612345678` as intake stores it, `+33612345678` and
  `+33 6 12 34 56 78` are all found;
- every text (names, street, city, email and its local part): whatever the case and the
  accents (a letter writes the city in capitals, a PDF may drop an accent);
- the description: the whole text and each of its words of seven letters or more (shorter
  words such as "emploi" also name the life event, which is not personal);
- the postcode: its five digits.

Both the raw bytes and the JSON they hold (`\\u00e9` escapes read back) are searched.
`preferred_channel` is not probed (its values are common words): its key's absence is
checked by the tests instead.
"""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping

#: The personal fields of a citizen that can be probed in bytes.
PROBED_FIELDS = (
    "given_name",
    "family_name",
    "email",
    "phone",
    "street",
    "postcode",
    "city",
    "description",
)
#: The policy: the personal fields each agency may receive, written here from
#: docs/data-protection.md ("Fields removed from each topic"), not read from the catalogue
#: or the adapters' declarations (which are what the tests check against it).
MAY_RECEIVE = {
    "caf": {"given_name", "family_name", "postcode", "description"},
    "dgfip": {"given_name", "family_name", "postcode"},
    "france_travail": {"given_name", "family_name", "email", "postcode", "description"},
    "cpam": {"given_name", "family_name", "postcode"},
    "ants": {"given_name", "family_name", "postcode"},
}
#: What the agents' events (thanks, warnings, breaches, a file waiting) may carry of the
#: citizen: the name.
AGENTS_MAY_RECEIVE = {"given_name", "family_name"}
_SEPARATORS = r"[\s.\-]*"


def fold(text: str) -> str:
    """Lower case, without accents: how every haystack and needle is compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def phone_pattern(phone: str) -> re.Pattern[str]:
    """The phone's nine significant digits, with any separators between them."""
    digits = re.sub(r"\D", "", phone)
    return re.compile(_SEPARATORS.join(digits[-9:]))


def description_words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text) if len(w) >= 7]


def forms(field: str, value: str) -> list[str | re.Pattern[str]]:
    """What to look for when `field` holds `value` (strings are compared folded)."""
    if field == "phone":
        return [phone_pattern(value)]
    if field == "email":
        return [value, value.split("@", 1)[0]]
    if field == "description":
        return [value, *description_words(value)]
    return [value]


def haystacks(raw: bytes) -> list[str]:
    text = raw.decode("utf-8", errors="replace")
    found = [text]
    with contextlib.suppress(ValueError):
        found.append(json.dumps(json.loads(text), ensure_ascii=False))
    return [fold(h) for h in found]


def leaks(raw: bytes, personal: Mapping[str, str | None], fields: Iterable[str]) -> list[str]:
    """`field: form` for each form of the values of `fields` (from `personal`) found in `raw`."""
    seen = haystacks(raw)
    found = []
    for field in fields:
        value = personal.get(field)
        if not value:
            continue
        for form in forms(field, value):
            if isinstance(form, re.Pattern):
                hit = any(form.search(h) for h in seen)
                shown = form.pattern
            else:
                hit = any(fold(form) in h for h in seen)
                shown = form
            if hit:
                found.append(f"{field}: {shown}")
    return found
