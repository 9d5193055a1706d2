"""Where Keycloak's distribution and realm templates are kept: the user's cache, shared by
every clone of the repository (devstack.keycloak.cache_dir)."""

from __future__ import annotations

from pathlib import Path

from devstack.keycloak import CACHE_VARIABLE, cache_dir


def test_the_cache_is_the_users_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_VARIABLE, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "guichet-unique" / "keycloak"

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "guichet-unique" / "keycloak"

    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "elsewhere"))
    assert cache_dir() == Path(tmp_path / "elsewhere")
