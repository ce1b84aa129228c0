"""`spaces export k8s` through the CLI against a real `spaces serve`: the owner gets manifests that the Kubernetes
schema accepts, with the space's variable in the Deployment and its secret as an empty placeholder unless asked
for; an outsider gets a 404 for a private space (as for everything of it), and a reader of a public one gets no
secret names and a 403 for their values."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from spaces_harness import Platform, write_app

CLI = [sys.executable, "-m", "spaces_runtime.cli"]
VALUE = "sk-export-5Rt8wQz1"
SITE = {"README.md": "---\ntitle: Site\nsdk: static\n---\n", "index.html": "<h1>hello from the site</h1>\n"}


class Users:
    def __init__(self, platform: Platform, tmp: Path) -> None:
        self.platform = platform
        self.tmp = tmp
        self.tokens: dict[str, str] = {}

    def cli(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **self.platform.cli_env(),
            "SPACES_DATA_DIR": str(self.tmp / "nowhere"),
            "SPACES_CONFIG_DIR": str(self.tmp / f"config-{user}"),
            "SPACES_TOKEN": self.tokens[user],
        }
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)

    def ok(self, user: str, *args: str) -> str:
        result = self.cli(user, *args)
        assert result.returncode == 0, f"{user}: spaces {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Users]:
    root = tmp_path_factory.mktemp("export")
    platform = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    people = Users(platform, root)
    try:
        for user in ("alice", "bob"):  # set up over HTTP: the CLI under test is `spaces export`
            api(platform, platform.token, "/api/users", {"name": user})
            people.tokens[user] = api(platform, platform.token, "/api/tokens", {"user": user})["token"]
        people.ok("alice", "deploy", str(write_app(root / "site", SITE)), "--name", "alice/site", "--private")
        api(platform, people.tokens["alice"], "/api/spaces/alice/site/variables", {"key": "GREETING", "value": "hello"})
        api(platform, people.tokens["alice"], "/api/spaces/alice/site/secrets", {"key": "API_KEY", "value": VALUE})
        yield people
    finally:
        platform.stop()


def api(platform: Platform, token: str, path: str, body: dict[str, str]) -> Any:
    answer = httpx.post(f"{platform.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.is_success, answer.text
    return answer.json()


def kinds(text: str) -> dict[str, dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in docs}


def test_the_owner_exports_valid_manifests_with_placeholders_for_secrets(users: Users) -> None:
    text = users.ok("alice", "export", "k8s", "alice/site", "--image", "registry.example.com/site:1")
    docs = kinds(text)
    assert set(docs) >= {
        "Deployment/space-alice-site",
        "Service/space-alice-site",
        "Ingress/space-alice-site-path",
        "Ingress/space-alice-site-host",
        "Secret/space-alice-site-secrets",
        "PersistentVolumeClaim/space-alice-site-data",
    }
    pod = docs["Deployment/space-alice-site"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example.com/site:1"
    assert {"name": "GREETING", "value": "hello"} in container["env"]
    assert (
        container["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsUser"] == 1000
    )
    assert docs["Secret/space-alice-site-secrets"]["stringData"] == {"API_KEY": ""}
    assert VALUE not in text
    host = docs["Ingress/space-alice-site-host"]["spec"]["rules"][0]["host"]
    assert host == "alice-site.localhost"  # the platform's public host, without its port
    assert {"name": "SPACE_HOST", "value": host} in container["env"]


def test_secret_values_only_on_request_and_into_a_private_file(users: Users) -> None:
    target = users.tmp / "site.yaml"
    users.ok("alice", "export", "k8s", "alice/site", "--secret-values", "-o", str(target))
    assert target.stat().st_mode & 0o077 == 0
    docs = kinds(target.read_text())
    assert docs["Secret/space-alice-site-secrets"]["stringData"] == {"API_KEY": VALUE}


def test_an_outsider_cannot_tell_a_private_space_exists(users: Users) -> None:
    result = users.cli("bob", "export", "k8s", "alice/site")
    assert result.returncode == 1 and "404" in result.stderr and "apiVersion" not in result.stdout
    anonymous = httpx.get(f"{users.platform.url}/api/spaces/alice/site/export/k8s", timeout=30)
    assert anonymous.status_code == 404
    missing = users.cli("bob", "export", "k8s", "alice/nothing-here")
    assert missing.returncode == 1 and "404" in missing.stderr  # the same answer as for a space that is not there


def test_a_reader_of_a_public_space_gets_no_secret_names_and_no_values(users: Users) -> None:
    users.ok("alice", "settings", "alice/site", "--private", "false")
    docs = kinds(users.ok("bob", "export", "k8s", "alice/site"))
    assert docs["Secret/space-alice-site-secrets"]["stringData"] == {}
    refused = users.cli("bob", "export", "k8s", "alice/site", "--secret-values")
    assert refused.returncode == 1 and "403" in refused.stderr and VALUE not in refused.stdout
