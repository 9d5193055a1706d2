"""The image (deploy/Dockerfile) runs as the unprivileged user the manifests expect: USER is a
numeric, non-root uid:gid created in the image, and every pod runs as exactly that user, non-root,
on a read-only root filesystem the image is built for (bytecode compiled at build time)."""

from __future__ import annotations

import re

import pytest

from tests.deploy.support import ROOT, build, of_kind

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments out."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(i.split(None, 1)[0].upper(), i.split(None, 1)[1]) for i in logical]


def final_stage() -> list[tuple[str, str]]:
    found = instructions()
    last_from = max(i for i, (op, _) in enumerate(found) if op == "FROM")
    return found[last_from:]


def image_user() -> tuple[int, int]:
    users = [args for op, args in final_stage() if op == "USER"]
    assert users, "the final stage sets USER"
    match = re.fullmatch(r"(\d+):(\d+)", users[-1].strip())
    assert match, f"USER is numeric uid:gid (kubelet checks runAsNonRoot on it): {users[-1]}"
    return int(match[1]), int(match[2])


def test_the_image_runs_as_an_unprivileged_user_it_creates():
    uid, gid = image_user()
    assert uid != 0 and gid != 0
    runs = " ".join(args for op, args in final_stage() if op == "RUN")
    assert f"useradd --system --uid {uid} --gid {gid}" in runs
    assert f"groupadd --system --gid {gid}" in runs
    stage = final_stage()
    last_user = max(i for i, (op, _) in enumerate(stage) if op == "USER")
    assert not [op for op, _ in stage[last_user:] if op in ("RUN", "COPY", "ADD")], (
        "nothing is installed after USER: the user owns nothing of the application"
    )


def test_the_image_is_built_for_a_read_only_root_filesystem():
    env = " ".join(args for op, args in final_stage() if op == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in env  # no .pyc written at run time


@pytest.mark.parametrize("directory", ["overlays/production", "overlays/dev", "adapters/caf"])
def test_every_pod_runs_as_the_images_user(directory):
    uid, gid = image_user()
    pods = [
        (f"{r['kind']}/{r['metadata']['name']}", r["spec"]["template"]["spec"])
        for r in build(directory)
        if r["kind"] in ("Deployment", "Job")
    ]
    assert pods
    for name, pod in pods:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert (security["runAsUser"], security["runAsGroup"]) == (uid, gid), name
        for container in pod["containers"]:
            own = container["securityContext"]
            assert own.get("runAsUser", uid) == uid and own.get("runAsGroup", gid) == gid, name
            assert own["readOnlyRootFilesystem"] is True, name


def test_the_deployments_use_the_image():
    for deployment in of_kind(build("overlays/production"), "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["image"].split("/")[-1].startswith("guichet-unique"), container
