"""The contract test kit, run as agencies run it (the `guichet-adapter-kit` command),
against a real simulator process: the five adapters pass; broken ones fail with the
expected messages."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.procs import ServiceProcess

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
#: The secret France Travail's sandbox signs its callbacks with, given to the kit as well.
CALLBACK_SECRET = "secret-du-bac-a-sable"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Iterator[str]:
    port = free_port()
    proc = ServiceProcess(
        "sandbox",
        [str(BIN / "agency-simulator"), "--port", str(port), "--log-level", "warning"],
        {"CALLBACK_SECRET": CALLBACK_SECRET},
        tmp_path_factory.mktemp("sandbox") / "sandbox.log",
        health_url=f"http://127.0.0.1:{port}/health",
    )
    proc.start()
    proc.wait_healthy(30)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()


def kit(
    adapter: str, sandbox: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(BIN / "guichet-adapter-kit"),
            adapter,
            "--sandbox",
            sandbox,
            "--callback-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "CALLBACK_SECRET": CALLBACK_SECRET, **(env or {})},
    )


@pytest.mark.parametrize("adapter", ["caf", "dgfip", "france_travail", "cpam", "ants"])
def test_every_adapter_of_the_repository_passes_the_kit(adapter, sandbox):
    result = kit(adapter, sandbox)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Conforme : toutes les règles sont respectées." in result.stdout
    # The rules specific to each kind of agency were really exercised.
    if adapter == "france_travail":
        assert "OK     Rappel asynchrone reçu sur une vraie socket et lu" in result.stdout
        assert (
            "OK     Consultation de l'état d'une demande (réconciliation d'un rappel perdu)"
            in result.stdout
        )
        assert (
            "OK     Rappels authentifiés (signés par l'organisme ; non signés ou rejoués "
            "refusés : 401)" in result.stdout
        )
    if adapter == "cpam":
        assert "OK     Pièces justificatives demandées, transmises, puis décision" in result.stdout


def test_a_sandbox_signing_with_another_secret_fails_the_kit(sandbox):
    """Issue 12: the agency must sign its callbacks with the secret shared with the adapter."""
    result = kit("france_travail", sandbox, {"CALLBACK_SECRET": "un-autre-secret"})
    assert result.returncode == 1, result.stdout
    assert "ÉCHEC  Rappels authentifiés" in result.stdout
    assert "le rappel du bac à sable n'est pas accepté" in result.stdout
    assert "(signature_invalide)" in result.stdout


def test_a_broken_adapter_fails_the_kit_with_each_rule_in_plain_words(sandbox):
    result = kit("tests.adapters.broken:BrokenAdapter", sandbox)
    assert result.returncode == 1
    out = result.stdout
    expected = [
        "La règle « silence_vaut_acceptation » exige un délai légal, en mois (deadline_months) ou "
        "en jours (deadline_days).",
        "le champ déclaré « phone » n'est jamais transmis",
        "read_answer a accepté un JSON sans décision et en a fait AgencyAnswer",
        "deux envois de la même demande ont reçu deux références",
        "Le libellé déclaré « CAF (adaptateur défectueux) » diffère de celui du catalogue "
        "« Caisse d'allocations familiales (CAF) ».",
        "Non conforme : 5 règle(s) sur 7 non respectée(s).",
    ]
    for message in expected:
        assert message in out, out


def test_an_adapter_reading_undeclared_citizen_data_fails_the_kit(sandbox):
    result = kit("tests.adapters.broken:SnoopingAdapter", sandbox)
    assert result.returncode == 1
    assert (
        "build_call lit un champ non déclaré pour « naissance » : "
        "le champ citoyen « email » n'est pas déclaré (citizen_fields)" in result.stdout
    )


def test_an_adapter_must_handle_every_life_event_the_catalogue_sends_it(sandbox, tmp_path):
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(
        '[agencies]\nants = "Agence nationale des titres sécurisés (ANTS)"\n'
        '[citizen_fields]\nants = ["given_name", "family_name", "postcode"]\n'
        '[life_events]\nnaissance = { label = "Naissance d\'un enfant", agencies = ["ants"] }\n',
        encoding="utf-8",
    )
    result = kit("ants", sandbox, {"GUICHET_CATALOGUE": str(catalogue)})
    assert result.returncode == 1
    assert (
        "ÉCHEC  Accord avec le catalogue du guichet (code, libellé, événements de vie, "
        "champs citoyen)" in result.stdout
    )
    assert (
        "Le catalogue adresse à l'organisme des dossiers que la déclaration ne traite pas : "
        "naissance (ajoutez-les à life_events)." in result.stdout
    )


def test_an_adapter_must_declare_the_citizen_fields_the_catalogue_sends_it(sandbox, tmp_path):
    """Issue 13: the core puts on an agency's topic only the catalogue's fields; an adapter
    declaring others would never get them, a catalogue listing more sends them for nothing."""
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(
        '[agencies]\nants = "Agence nationale des titres sécurisés (ANTS)"\n'
        '[citizen_fields]\nants = ["given_name", "family_name", "email"]\n'
        '[life_events]\ndemenagement = { label = "Déménagement", agencies = ["ants"] }\n',
        encoding="utf-8",
    )
    result = kit("ants", sandbox, {"GUICHET_CATALOGUE": str(catalogue)})
    assert result.returncode == 1
    assert (
        "Champs citoyen déclarés que le catalogue ne transmet pas à l'organisme : postcode"
        in result.stdout
    )
    assert (
        "Champs citoyen transmis par le catalogue que la déclaration ne demande pas : email"
        in result.stdout
    )


def test_an_unknown_adapter_is_named(sandbox):
    result = kit("urssaf", sandbox)
    assert result.returncode == 2 and "aucun adaptateur « urssaf » installé" in result.stderr
