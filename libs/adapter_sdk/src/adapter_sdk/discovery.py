"""Adapters are found through package entry points (group `guichet.adapters`), so an
agency ships its adapter as its own package without touching the core."""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

from adapter_sdk.interface import AgencyAdapter

GROUP = "guichet.adapters"


class AdapterNotFound(LookupError):
    pass


def available() -> dict[str, str]:
    """Entry-point name -> 'module:Class' of every installed adapter."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load(name: str) -> type[AgencyAdapter]:
    """The adapter class registered as `name`, or a class given as 'module:Class'."""
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if matches:
        cls = matches[0].load()
    elif ":" in name:
        # As `python -m` does: an adapter under development is found from where the kit runs.
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module, _, attr = name.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    else:
        known = ", ".join(sorted(available())) or "aucun"
        raise AdapterNotFound(f"aucun adaptateur « {name} » installé (installés : {known})")
    if not (isinstance(cls, type) and issubclass(cls, AgencyAdapter)):
        raise AdapterNotFound(f"« {name} » n'est pas une sous-classe de AgencyAdapter")
    return cls
