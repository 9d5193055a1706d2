"""The AsyncAPI document is generated from the contracts and matches what the services
really subscribe to."""

from pathlib import Path

import pytest

from devstack.asyncapi import render
from guichet_runtime.sealing import new_key
from shared_models import topics

ROOT = Path(__file__).resolve().parents[1]


def test_committed_asyncapi_document_is_up_to_date():
    committed = (ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")
    assert committed == render(), "regenerate: uv run guichet-dev asyncapi"


def _subscribed_topics(service: str, tmp_path: Path) -> set[str]:
    db = f"sqlite+aiosqlite:///{tmp_path}/{service}.db"
    if service == "intake":
        from intake.bootstrap import IntakeSettings, bootstrap

        app = bootstrap(IntakeSettings(database_url=db, access_code_key=new_key()))
    elif service == "assignment":
        from assignment.bootstrap import AssignmentSettings, bootstrap

        app = bootstrap(AssignmentSettings(database_url=db))
    elif service == "notification":
        from notification.bootstrap import NotificationSettings, bootstrap

        app = bootstrap(NotificationSettings(database_url=db, access_code_key=new_key()))
    else:
        from adapter_sdk import discovery
        from adapter_sdk.app import build_app

        cls = discovery.load(service.removeprefix("adapter-").replace("-", "_"))
        app = build_app(cls, cls.Config(database_url=db))
    subscribers = app.state.runtime.broker.subscribers
    return {getattr(t, "name", t) for sub in subscribers for t in sub.topics}


@pytest.mark.parametrize(
    "service",
    [
        "intake",
        "assignment",
        "notification",
        "adapter-caf",
        "adapter-dgfip",
        "adapter-france-travail",
        "adapter-cpam",
    ],
)
def test_declared_flows_match_the_services_subscriptions(service, tmp_path):
    declared = {
        topic for topic, (_, _, consumers) in topics.flows().items() if service in consumers
    }
    assert _subscribed_topics(service, tmp_path) == declared
