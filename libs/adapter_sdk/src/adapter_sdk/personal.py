"""The personal data an adapter keeps in its tables, sealed with the citizen's data key like
the records that brought it (crypto-shredding, docs/data-protection.md, "What is still in
clear").

What is personal here: the agency's decision about the citizen (`requests.answer`, a held
callback's `callbacks.answer`: amount, start date, reason, requested document) and the exact
bytes the agency delivered to the callback endpoint (`callbacks.payload` of a held callback,
the same decision in the agency's words). The agency calls back in clear over HTTP: it has no
key. The adapter seals what it stores with the key of the request's file.

Which key: the one the adapter learnt when it opened the file's agency request
(`personal_data_key_refs`), recorded before the request is sent to the agency, so that a
callback outrunning the acknowledgement finds it. Sealing off (the adapter has no key service,
KEY_SERVICE_URL unset) or a file without a key (its request travelled in clear): the value is
stored as it is, as on the topics. Both forms are read: a value that is not a sealed object is
read as it is. Once the key is shredded, what was stored can no longer be opened
(`StoredErased`), and what is stored afterwards is the erased marker (no personal data).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from adapter_sdk.interface import AgencyAnswer
from guichet_runtime.db import UnitOfWork
from guichet_runtime.personal_data import KeyShredded, KeyUnavailable, erased_value, open_value
from guichet_runtime.personal_data import seal_value as seal_with
from shared_models import is_sealed
from shared_models.personal import SealedPersonalData


class StoredErased(Exception):
    """A stored personal value whose key was shredded: the citizen's data is erased."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"stored personal data sealed with shredded key {key_id}")
        self.key_id = key_id


def file_of_request(request_id: str, agency: str) -> str:
    """The file a request id names (`<file_id>-<agency>`, the assignment service's rule): what
    a callback's stored values are sealed for, known before the request is recorded."""
    return request_id.removesuffix(f"-{agency}")


async def seal_stored(uow: UnitOfWork, file_id: str, value: Any) -> Any:
    """`value` (JSON) as the adapter stores it for `file_id`: sealed with the file's data key;
    the erased marker once that key is shredded; as it is when the adapter seals nothing or
    the file has no key. KeyUnavailable (the key service down) propagates: try again later."""
    sealing = uow.personal_data
    if sealing is None:
        return value
    key_id = await sealing.file_key(uow, file_id)
    if key_id is None:
        return value
    try:
        key = await sealing.key(key_id, uow.conn)
    except KeyShredded:
        return erased_value(key_id)
    return seal_with(key_id, key, value, file_id)


async def open_stored(uow: UnitOfWork, stored: Any, file_id: str) -> Any:
    """The value `seal_stored` stored for `file_id` (a value in clear: as it is). StoredErased
    once its key is shredded; KeyUnavailable when the key cannot be had now; CannotOpen when
    altered or moved to another file."""
    if not is_sealed(stored):
        return stored
    sealed = SealedPersonalData.model_validate(stored)
    if not sealed.ciphertext:  # stored after the shredding: nothing in it
        raise StoredErased(sealed.key_id)
    sealing = uow.personal_data
    if sealing is None:
        raise KeyUnavailable(
            f"sealed data of file {file_id}, and this adapter has no key service (KEY_SERVICE_URL)"
        )
    try:
        key = await sealing.key(sealed.key_id, uow.conn)
    except KeyShredded:
        raise StoredErased(sealed.key_id) from None
    return open_value(key, sealed.model_dump(), file_id)


def canonical(value: Any) -> str:
    """A JSON value in one canonical form (keys sorted): how answers are stored and compared."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


async def stored_answer_text(uow: UnitOfWork, file_id: str, answer: AgencyAnswer) -> str:
    """A decision as `requests.answer` and `callbacks.answer` hold it (sealed or in clear)."""
    return canonical(await seal_stored(uow, file_id, answer.model_dump(mode="json")))


async def opened_answer(uow: UnitOfWork, text: str, file_id: str) -> AgencyAnswer:
    """The decision a `stored_answer_text` holds; StoredErased once the key is shredded."""
    return AgencyAnswer.model_validate(await open_stored(uow, json.loads(text), file_id))


async def stored_payload(uow: UnitOfWork, file_id: str, body: bytes) -> bytes:
    """A callback's exact bytes as `callbacks.payload` holds them: the sealed object (JSON, the
    bytes in base64 inside) or the bytes themselves. A stored callback is always one the adapter
    could read (its id, request and decision), never a sealed object's shape: no ambiguity."""
    sealed = await seal_stored(uow, file_id, base64.b64encode(body).decode())
    return canonical(sealed).encode() if is_sealed(sealed) else body


async def opened_payload(uow: UnitOfWork, stored: bytes, file_id: str) -> bytes:
    """The exact bytes a `stored_payload` holds; StoredErased once the key is shredded."""
    try:
        parsed = json.loads(stored)
    except ValueError:
        return stored
    if not is_sealed(parsed):
        return stored
    return base64.b64decode(await open_stored(uow, parsed, file_id))
