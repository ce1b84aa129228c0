"""`spaces export k8s` renders pure manifests: golden files pin what a cluster gets, the Kubernetes OpenAPI schema
(kubernetes-validate, offline) checks every document, and the hardening is the docker backend's.

Regenerate the golden files after an intended change with ``UPDATE_GOLDEN=1 pytest tests/unit/test_k8s_export.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from builder import plan as plans
from builder import spec as specs
from spaces_runtime.config import Settings
from spaces_runtime.export import k8s
from spaces_runtime.export.k8s import SpaceExport
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.tiers import TIERS

GOLDEN = Path(__file__).parent / "golden" / "k8s"
KUBERNETES = "1.33"
IDENTITY = {"SPACE_ID": "alice/demo", "SPACE_AUTHOR_NAME": "alice", "SPACE_REPO_NAME": "demo"}

CASES: dict[str, SpaceExport] = {
    "gradio.yaml": SpaceExport(
        space_id="alice/demo",
        sdk="gradio",
        sdk_version="6.31.0",
        app_port=7860,
        image="registry.example.com/spaces/alice-demo:0123456789ab",
        hardware="cpu-basic",
        tier=TIERS["cpu-basic"],
        env={**IDENTITY, "GREETING": "hello", "GRADIO_ROOT_PATH": "/spaces/alice/demo"},
        secret_keys=("API_KEY",),
        host="spaces.example.com",
        storage="20Gi",
        annotations={"spaces-runtime.python-version": "3.11"},
    ),
    "streamlit-1-17-gpu.yaml": SpaceExport(
        space_id="bob/old-dash",
        sdk="streamlit",
        sdk_version="1.17.0",
        app_port=7860,
        image="registry.example.com/spaces/bob-old-dash:abc",
        hardware="t4-small",
        tier=TIERS["t4-small"],
        env={"SPACE_ID": "bob/old-dash", "STREAMLIT_SERVER_BASE_URL_PATH": "spaces/bob/old-dash"},
        secret_keys=("DB_PASSWORD", "TOKEN"),
        secret_values={"DB_PASSWORD": "s3cret", "TOKEN": "t0k"},
        host="localhost",
        storage=None,
        startup_timeout_s=600,
    ),
    "docker-reader.yaml": SpaceExport(
        space_id="team/api",
        sdk="docker",
        sdk_version=None,
        app_port=8080,
        image="spaces-runtime/team-api:1",
        hardware="cpu-upgrade",
        tier=TIERS["cpu-upgrade"],
        env={"SPACE_ID": "team/api"},
        secrets_hidden=True,
        host="example.org",
    ),
    "static-no-host-link.yaml": SpaceExport(
        space_id="carol/my_site",
        sdk="static",
        sdk_version=None,
        app_port=7860,
        image="spaces-runtime/site:2",
        hardware="cpu-basic",
        tier=TIERS["cpu-basic"],
        env={},
        host="10.0.0.5",
    ),
}


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_manifests_match_golden_file(name: str) -> None:
    rendered = k8s.to_yaml(k8s.render(CASES[name]))
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_manifest_is_valid_against_the_kubernetes_schema(name: str) -> None:
    docs = documents(k8s.to_yaml(k8s.render(CASES[name])))
    assert len(docs) >= 4
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises, naming the field, when invalid


def test_the_schema_check_catches_a_misspelt_field() -> None:
    deployment = k8s.deployment(CASES["gradio.yaml"])
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def by_kind(space: SpaceExport) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in k8s.render(space).manifests:
        found.setdefault(doc["kind"], []).append(doc)
    return found


def test_the_pod_has_the_docker_backends_hardening_and_tier_limits() -> None:
    deployment = by_kind(CASES["gradio.yaml"])["Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["medium"] == "Memory"  # the docker backend's tmpfs /tmp
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "16Gi"}  # cpu-basic
    assert {"name": "GREETING", "value": "hello"} in container["env"]


def test_readiness_follows_the_sdk_era_under_the_path_prefix() -> None:
    new = by_kind(CASES["gradio.yaml"])["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]
    old = by_kind(CASES["streamlit-1-17-gpu.yaml"])["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]
    docker = by_kind(CASES["docker-reader.yaml"])["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]
    assert new["readinessProbe"]["httpGet"]["path"] == "/spaces/alice/demo/config"
    assert old["readinessProbe"]["httpGet"]["path"] == "/spaces/bob/old-dash/healthz"  # Streamlit before 1.18
    assert old["startupProbe"]["failureThreshold"] * old["startupProbe"]["periodSeconds"] == 600
    assert "tcpSocket" in docker["readinessProbe"]  # a docker app is up once it answers at all
    assert old["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_ingresses_give_both_links_and_rewrite_only_the_one_the_app_does_not_serve() -> None:
    gradio = {i["metadata"]["name"]: i for i in by_kind(CASES["gradio.yaml"])["Ingress"]}
    path = gradio["space-alice-demo-path"]["spec"]
    host = gradio["space-alice-demo-host"]["spec"]
    assert path["rules"][0]["http"]["paths"][0]["path"] == "/spaces/alice/demo"
    assert "ingressClassName" not in path  # portable: Gradio serves under the prefix itself
    assert host["rules"][0]["host"] == "alice-demo.spaces.example.com"
    rewrite = gradio["space-alice-demo-host"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"]
    assert rewrite == "/spaces/alice/demo/$1"
    docker = {i["metadata"]["name"]: i for i in by_kind(CASES["docker-reader.yaml"])["Ingress"]}
    assert docker["space-team-api-host"]["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/"
    assert "rewrite-target" in str(docker["space-team-api-path"]["metadata"]["annotations"])
    assert [i["metadata"]["name"] for i in by_kind(CASES["static-no-host-link.yaml"])["Ingress"]] == [
        "space-carol-my-site-path"
    ]  # my_site and an IP make no DNS name


def test_secret_values_only_when_asked_else_named_placeholders_or_nothing() -> None:
    placeholders = by_kind(CASES["gradio.yaml"])["Secret"][0]
    assert placeholders["stringData"] == {"API_KEY": ""}
    assert placeholders["metadata"]["annotations"]["spaces-runtime.secret-values"] == "placeholders"
    included = by_kind(CASES["streamlit-1-17-gpu.yaml"])["Secret"][0]
    assert included["stringData"] == {"DB_PASSWORD": "s3cret", "TOKEN": "t0k"}
    hidden = by_kind(CASES["docker-reader.yaml"])["Secret"][0]
    assert hidden["stringData"] == {}
    notes = k8s.render(CASES["docker-reader.yaml"]).notes
    assert any("only the space's writers" in note for note in notes)
    for case in ("gradio.yaml", "docker-reader.yaml"):  # values never in the Deployment's env
        env = by_kind(CASES[case])["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["env"]
        assert not {e["name"] for e in env} & set(CASES[case].secret_keys)


def test_data_is_a_claim_unless_turned_off_and_then_an_emptydir() -> None:
    claimed = by_kind(CASES["gradio.yaml"])
    assert claimed["PersistentVolumeClaim"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claimed["Deployment"][0]["spec"]["strategy"]["type"] == "Recreate"
    unclaimed = by_kind(CASES["streamlit-1-17-gpu.yaml"])
    assert "PersistentVolumeClaim" not in unclaimed
    volumes = unclaimed["Deployment"][0]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in volumes
    assert k8s.storage_size("medium", None) == "150Gi" and k8s.storage_size(None, "none") is None
    assert k8s.storage_size("bogus", None) == k8s.DEFAULT_STORAGE


def test_names_are_dns_labels_even_for_long_and_odd_ids() -> None:
    name = k8s.resource_name("Some.Org/" + "a_very_long_space_name" * 4)
    assert len(name) <= 52 and name.startswith("space-some-org-")
    assert k8s.resource_name("alice/demo") == "space-alice-demo"


def test_from_launch_keeps_the_docker_env_less_secrets_and_the_runner(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nsdk: streamlit\nsdk_version: 1.25.0\npython_version: '3.9'\n---\n")
    (tmp_path / "app.py").write_text("import streamlit as st\n")
    spec = specs.load(tmp_path, name="demo")
    plan = plans.make(spec, Settings(backend="docker"))
    env = {
        **IDENTITY,
        "GREETING": "hi",
        "API_KEY": "v",
        "SPACES_RUNNER_TOKEN": "t",
        "PYTHONPATH": "/kit",
        "SPACE_HOST": "alice-demo.localhost:7000",
    }
    launch = LaunchSpec(
        space_id="alice/demo",
        sdk="streamlit",
        app_dir=tmp_path,
        app_file="app.py",
        base_path="/spaces/alice/demo",
        env=env,
        image="img:1",
        sdk_version="1.25.0",
    )
    space = k8s.from_launch(
        launch,
        plan,
        TIERS["cpu-basic"],
        secret_keys=("API_KEY",),
        secret_values=None,
        secrets_hidden=False,
        host="",
        storage=None,
    )
    assert space.env["GREETING"] == "hi" and space.env["STREAMLIT_SERVER_BASE_URL_PATH"] == "spaces/alice/demo"
    assert not {"API_KEY", "SPACES_RUNNER_TOKEN", "PYTHONPATH"} & set(space.env)
    assert space.annotations["spaces-runtime.python-version"] == "3.9"
    assert "SPACE_HOST" not in space.env  # the platform's link is not the cluster's
    on_cluster = k8s.from_launch(
        launch,
        plan,
        TIERS["cpu-basic"],
        secret_keys=(),
        secret_values=None,
        secrets_hidden=False,
        host="apps.example.com",
        storage=None,
    )
    assert on_cluster.env["SPACE_HOST"] == "alice-demo.apps.example.com"
