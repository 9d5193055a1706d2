"""No default secret: outside development a service refuses to start without its secrets;
in development a random one is generated once and kept in a file under the working
directory (`SECRETS_DIR`, `var/secrets` by default), so restarts keep sessions."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr


class Environment(StrEnum):
    """Where a service runs; the safe default is production."""

    DEV = "dev"
    PRODUCTION = "production"


class MissingSecret(RuntimeError):
    """A secret the service needs was not given (outside development)."""


def required_secret(
    value: SecretStr | None, name: str, environment: Environment, secrets_dir: Path
) -> str:
    """The secret `name` (an environment variable name, e.g. SECRET_KEY): as given, else
    in development the one generated earlier (or now) in `secrets_dir`; else refuse."""
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if environment is not Environment.DEV:
        raise MissingSecret(
            f"{name} is required outside development (ENVIRONMENT={environment.value}): "
            f"give it from the secret store, or set ENVIRONMENT=dev on a laptop."
        )
    path = secrets_dir / name.lower()
    if path.exists():
        return path.read_text().strip()
    secrets_dir.mkdir(parents=True, exist_ok=True)
    generated = secrets.token_urlsafe(32)
    # Created readable by its owner only; O_EXCL: two processes starting at once keep one.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(generated + "\n")
    return generated
