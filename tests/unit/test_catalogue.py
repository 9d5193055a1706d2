"""The catalogue of agencies and life events: a data file (GUICHET_CATALOGUE replaces the
shipped one), read lazily, validated in French; the adapters' declarations agree with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from adapter_sdk import discovery
from adapter_sdk.declaration import Declaration, catalogue_problems
from shared_models import (
    AGENCY_LABELS,
    LIFE_EVENTS,
    CatalogueInvalid,
    DeadlineRule,
    KnownAgencyCode,
    catalogue,
    topics,
)
from shared_models.catalogue import DEFAULT_CATALOGUE, load_catalogue

ANTS_LINE = (
    'perte_papiers = { label = "Perte ou vol de papiers d\'identité", agencies = ["ants"] }\n'
)


@pytest.fixture
def with_ants(tmp_path, monkeypatch) -> Path:
    """The shipped catalogue plus one line: a life event that reaches the ANTS."""
    path = tmp_path / "catalogue.toml"
    path.write_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8") + ANTS_LINE, encoding="utf-8")
    monkeypatch.setenv("GUICHET_CATALOGUE", str(path))
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_catalogue_names_the_agencies_and_the_life_events(monkeypatch):
    monkeypatch.delenv("GUICHET_CATALOGUE", raising=False)
    assert AGENCY_LABELS["caf"] == "Caisse d'allocations familiales (CAF)"
    assert AGENCY_LABELS.get("urssaf", "urssaf") == "urssaf"
    assert list(LIFE_EVENTS) == ["perte_emploi", "naissance", "demenagement", "arret_maladie"]
    assert LIFE_EVENTS["perte_emploi"].agencies == ("france_travail", "caf", "dgfip")
    # ANTS is named (its adapter can be installed) but no life event reaches it yet.
    assert "ants" in AGENCY_LABELS and "ants" not in catalogue().served_agencies()
    assert "agency.ants.requests" not in topics.all_topics()
    with pytest.raises(TypeError):
        AGENCY_LABELS["caf"] = "autre"  # type: ignore[index]


def test_one_catalogue_line_makes_files_reach_a_new_agency(with_ants):
    assert LIFE_EVENTS["perte_papiers"].agencies == ("ants",)
    assert catalogue().served_agencies() == ("caf", "dgfip", "france_travail", "cpam", "ants")
    declared = topics.all_topics()
    assert {"agency.ants.requests", "agency.ants.answers", "agency.ants.documents"} <= set(declared)
    assert topics.flows()["agency.ants.answers"] == (
        "AgencyAnswerReceived",
        "adapter-ants",
        ("assignment", "intake"),
    )


HEAD = '[agencies]\ncaf = "CAF"\n[life_events]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD + 'x_y = { label = "Un", agencies = ["urssaf"] }\n',
            "vise des organismes absents de [agencies] : urssaf",
        ),
        (
            HEAD + 'x_y = { label = "Un", agencies = ["caf", "caf"] }\n',
            "cite deux fois le même organisme",
        ),
        ('[agencies]\nCAF = "CAF"\n[life_events]\n', "est invalide : agencies.CAF"),
        (HEAD + 'x_y = { label = "Un", agencies = [] }\n', "life_events.x_y.agencies"),
        ("[agencies\n", "n'est pas un fichier TOML valide"),
    ],
)
def test_a_bad_catalogue_is_refused_in_french(tmp_path, text, expected):
    with pytest.raises(CatalogueInvalid) as caught:
        load_catalogue(write(tmp_path, text))
    assert expected in str(caught.value) and str(tmp_path) in str(caught.value)


def test_a_missing_catalogue_file_is_named():
    with pytest.raises(CatalogueInvalid, match="est illisible"):
        load_catalogue("/nonexistent/catalogue.toml")


def test_nothing_is_read_at_import_time(tmp_path):
    """A broken catalogue does not break imports; the first use says what is wrong."""
    code = (
        "import shared_models, shared_models.topics, intake.catalogue\n"
        "try:\n    shared_models.AGENCY_LABELS['caf']\n"
        "except shared_models.CatalogueInvalid as e:\n    print('refused:', e)\n"
    )
    env = {"GUICHET_CATALOGUE": str(tmp_path / "absent.toml"), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("refused: Le catalogue") and "absent.toml" in out.stdout


def test_a_known_agency_is_one_the_catalogue_names(with_ants):
    class Row(BaseModel):
        agencies: list[KnownAgencyCode]

    assert Row(agencies=["ants", "caf"]).agencies == ["ants", "caf"]
    with pytest.raises(ValidationError) as caught:
        Row(agencies=["urssaf"])
    error = caught.value.errors()[0]
    assert error["type"] == "enum" and "'caf'" in error["ctx"]["expected"]


@pytest.mark.parametrize("name", ["caf", "dgfip", "france_travail", "cpam", "ants"])
def test_every_adapter_of_the_repository_agrees_with_the_catalogue(name, with_ants):
    assert catalogue_problems(discovery.load(name).declaration, catalogue()) == []


def test_a_declaration_that_disagrees_with_the_catalogue_is_told_why(with_ants):
    base = discovery.load("ants").declaration.model_dump()
    renamed = Declaration(**{**base, "label": "ANTS"})
    assert catalogue_problems(renamed, catalogue()) == [
        "Le libellé déclaré « ANTS » diffère de celui du catalogue « Agence nationale des titres "
        "sécurisés (ANTS) »."
    ]
    narrow = Declaration(**{**base, "life_events": ("demenagement",)})
    assert "perte_papiers (ajoutez-les à life_events)" in catalogue_problems(narrow, catalogue())[0]
    stranger = Declaration(**{**base, "agency": "urssaf", "deadline_rule": DeadlineRule.NONE})
    assert "absent du catalogue" in catalogue_problems(stranger, catalogue())[0]
