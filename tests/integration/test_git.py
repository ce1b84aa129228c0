"""Each space is a git repository, driven with the real git binary against a real `spaces serve`: clone, commit,
push → RUNNING through the link with the stages streamed back as `remote:` lines; a push with a broken README is
refused with the reason and main stays where it was; people without write access cannot push, strangers cannot
clone a private space; `spaces deploy` becomes a commit; history and rollback."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spaces_harness import Platform, gradio_readme, write_app

STATIC = "---\ntitle: Site\nsdk: static\n---\n"


class Git:
    """git as each person runs it: their own home (so no one's config leaks in), no prompts, the token in the
    remote's URL (or, for a stranger, no token at all)."""

    def __init__(self, platform: Platform, root: Path, tokens: dict[str, str]) -> None:
        self.platform = platform
        self.root = root
        self.tokens = tokens
        home = root / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Test Person\n\temail = person@example.com\n"
                                         "[init]\n\tdefaultBranch = main\n")
        self.env = {**os.environ, "HOME": str(home), "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}

    def remote(self, space: str, user: str | None) -> str:
        auth = f"{user}:{self.tokens[user]}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.platform.port}/spaces/{space}"

    def __call__(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["git", *args], cwd=cwd or self.root, env=self.env, capture_output=True, text=True,
                              timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def new_repo(self, name: str, files: dict[str, str]) -> Path:
        folder = write_app(self.root / name, files)
        self("init", "--quiet", cwd=folder)
        self.commit(folder, "first version")
        return folder

    def commit(self, folder: Path, message: str) -> str:
        self("add", "--all", cwd=folder)
        self("commit", "--quiet", "-m", message, cwd=folder)
        return self("rev-parse", "HEAD", cwd=folder).stdout.strip()

    def remote_main(self, space: str, user: str | None = None) -> str:
        out = self("ls-remote", self.remote(space, user), "refs/heads/main").stdout
        return out.split()[0] if out else ""


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Git]:
    root = tmp_path_factory.mktemp("git")
    platform = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    tokens = platform.add_users("alice", "bob", token_name="git")
    yield Git(platform, root, tokens)
    platform.stop()


def page(git: Git, space: str) -> str:
    return httpx.get(f"{git.platform.url}/spaces/{space}/", timeout=30).text


def test_a_push_to_main_deploys_it_and_streams_the_stages_back(git: Git) -> None:
    folder = git.new_repo("site", {"README.md": STATIC, "index.html": "pushed v1"})
    pushed = git("push", git.remote("alice/site", "alice"), "main", cwd=folder)
    assert "remote: -----> BUILDING" in pushed.stderr
    assert "remote:        static site: served by the gateway" in pushed.stderr  # the build log, indented
    assert "remote: -----> RUNNING  http://localhost:" in pushed.stderr
    assert page(git, "alice/site") == "pushed v1"
    head = git("rev-parse", "HEAD", cwd=folder).stdout.strip()
    space = git.platform.space("alice/site")
    assert space["stage"] == "RUNNING" and space["sha"] == head and space["running_sha"] == head

    (folder / "index.html").write_text("pushed v2")
    second = git.commit(folder, "second version")
    git("push", git.remote("alice/site", "alice"), "main", cwd=folder)
    assert page(git, "alice/site") == "pushed v2"
    assert git.remote_main("alice/site") == second


def test_a_pushed_gradio_app_streams_its_build_and_answers_on_its_link(git: Git) -> None:
    app = "import gradio as gr\n\ngr.Interface(lambda name: 'hi ' + name, 'text', 'text').launch()\n"
    folder = git.new_repo("greeter", {"README.md": gradio_readme("Greeter"), "app.py": app})
    pushed = git("push", git.remote("alice/greeter", "alice"), "main", cwd=folder)
    lines = pushed.stderr.splitlines()
    stages = [line.split("----->")[1].split()[0] for line in lines if "remote: ----->" in line]
    assert stages == ["deploying", "BUILDING", "APP_STARTING", "RUNNING"], pushed.stderr
    assert any(line.startswith("remote:        ==> environment") for line in lines)  # the build log, as it ran
    served = httpx.get(f"{git.platform.url}/spaces/alice/greeter/", timeout=30)
    assert served.status_code == 200 and "gradio" in served.text.lower()


def test_a_broken_readme_is_refused_with_the_reason_and_main_stays(git: Git) -> None:
    folder = git.new_repo("broken", {"README.md": STATIC, "index.html": "good"})
    git("push", git.remote("alice/broken", "alice"), "main", cwd=folder)
    good = git.remote_main("alice/broken")
    (folder / "README.md").write_text("---\ntitle: Site\nsdk: gradoi\n---\n")
    git.commit(folder, "typo in sdk")
    refused = git("push", git.remote("alice/broken", "alice"), "main", cwd=folder, check=False)
    assert refused.returncode != 0
    assert "remote:        README.md line 3: sdk 'gradoi' is not one of gradio" in refused.stderr
    assert "main is unchanged" in refused.stderr and "[remote rejected]" in refused.stderr
    assert git.remote_main("alice/broken") == good
    assert page(git, "alice/broken") == "good"


def test_spaces_deploy_is_a_commit_by_the_uploader_that_anyone_can_clone(git: Git) -> None:
    app = write_app(git.root / "uploaded", {"README.md": STATIC, "index.html": "uploaded"})
    done = _cli_as(git, "bob", "deploy", str(app), "--name", "bob/uploaded")
    assert done.returncode == 0, done.stderr
    git("clone", "--quiet", git.remote("bob/uploaded", None), "cloned")
    cloned = git.root / "cloned"
    assert (cloned / "index.html").read_text() == "uploaded"
    author = git("log", "-1", "--format=%an|%s", cwd=cloned).stdout.strip()
    assert author == "bob|Deploy with spaces deploy"
    assert git.platform.space("bob/uploaded")["sha"] == git("rev-parse", "HEAD", cwd=cloned).stdout.strip()


def test_only_people_who_may_write_push_and_private_spaces_stay_hidden(git: Git) -> None:
    folder = git.new_repo("mine", {"README.md": STATIC, "index.html": "alice's"})
    git("push", git.remote("alice/mine", "alice"), "main", cwd=folder)
    before = git.remote_main("alice/mine")
    (folder / "index.html").write_text("bob was here")
    git.commit(folder, "vandalism")
    by_bob = git("push", git.remote("alice/mine", "bob"), "main", cwd=folder, check=False)
    assert by_bob.returncode != 0 and "403" in by_bob.stderr
    anonymous = git("push", git.remote("alice/mine", None), "main", cwd=folder, check=False)
    assert anonymous.returncode != 0 and "could not read Username" in anonymous.stderr  # git was asked to sign in
    assert git.remote_main("alice/mine") == before and page(git, "alice/mine") == "alice's"

    private = git.new_repo("hidden", {"README.md": STATIC, "index.html": "secret"})
    git("push", git.remote("alice/hidden", "alice"), "main", cwd=private)
    response = httpx.put(f"{git.platform.url}/api/spaces/alice/hidden/settings", json={"private": True},
                         headers={"Authorization": f"Bearer {git.tokens['alice']}"}, timeout=30)
    assert response.status_code == 200, response.text
    by_bob = git("clone", git.remote("alice/hidden", "bob"), "bob-copy", check=False)
    assert by_bob.returncode != 0 and "not found" in by_bob.stderr
    stranger = git("clone", git.remote("alice/hidden", None), "stranger-copy", check=False)
    assert stranger.returncode != 0 and "could not read Username" in stranger.stderr
    git("clone", "--quiet", git.remote("alice/hidden", "alice"), "alice-copy")
    assert (git.root / "alice-copy" / "index.html").read_text() == "secret"


def test_history_says_what_each_commit_reached_and_rollback_restores_one(git: Git) -> None:
    folder = git.new_repo("timeline", {"README.md": STATIC, "index.html": "one"})
    git("push", git.remote("alice/timeline", "alice"), "main", cwd=folder)
    first = git.remote_main("alice/timeline")
    (folder / "index.html").write_text("two")
    git.commit(folder, "second")
    git("push", git.remote("alice/timeline", "alice"), "main", cwd=folder)

    shown = _cli_as(git, "alice", "history", "alice/timeline", "--json")
    entries = json.loads(shown.stdout)
    assert [(e["message"], e["stage"], e["running"]) for e in entries] == [
        ("second", "RUNNING", True), ("first version", "RUNNING", False)]
    assert entries[0]["author"] == "Test Person" and entries[1]["commit"] == first

    rolled = _cli_as(git, "alice", "rollback", "alice/timeline", first[:7])
    assert rolled.returncode == 0, rolled.stderr
    assert page(git, "alice/timeline") == "one"
    entries = json.loads(_cli_as(git, "alice", "history", "alice/timeline", "--json").stdout)
    newest = entries[0]
    assert newest["message"].startswith(f"Roll back to {first[:7]}") and newest["running"]
    assert newest["stage"] == "RUNNING" and newest["author"] == "alice" and len(entries) == 3
    tree = git("ls-remote", git.remote("alice/timeline", None)).stdout  # main moved forward, history kept
    assert newest["commit"] in tree
    by_bob = _cli_as(git, "bob", "rollback", "alice/timeline", first[:7])
    assert by_bob.returncode != 0 and "403" in by_bob.stderr


def test_deleting_a_space_deletes_its_history(git: Git) -> None:
    folder = git.new_repo("doomed", {"README.md": STATIC, "index.html": "old life"})
    git("push", git.remote("alice/doomed", "alice"), "main", cwd=folder)
    response = httpx.delete(f"{git.platform.url}/api/spaces/alice/doomed",
                            headers={"Authorization": f"Bearer {git.tokens['alice']}"}, timeout=60)
    assert response.status_code == 200, response.text
    gone = git("ls-remote", git.remote("alice/doomed", "alice"), check=False)
    assert gone.returncode != 0 and "not found" in gone.stderr
    fresh = git.new_repo("reborn", {"README.md": STATIC, "index.html": "new life"})
    again = git("push", git.remote("alice/doomed", "alice"), "main", cwd=fresh)
    assert "[new branch]" in again.stderr and page(git, "alice/doomed") == "new life"
    entries = json.loads(_cli_as(git, "alice", "history", "alice/doomed", "--json").stdout)
    assert [e["message"] for e in entries] == ["first version"] and entries[0]["stage"] == "RUNNING"


def test_an_lfs_file_is_pushed_stored_once_and_served_by_the_app(git: Git) -> None:
    git("lfs", "install")  # into this test's own home
    picture = bytes(range(256)) * 2000  # 512 KB, as a binary a Space keeps in LFS
    folder = write_app(git.root / "gallery-app", {"README.md": STATIC, "index.html": '<img src="cat.png">'})
    (folder / "cat.png").write_bytes(picture)
    git("init", "--quiet", cwd=folder)
    git("lfs", "track", "*.png", cwd=folder)
    git.commit(folder, "a picture in LFS")
    assert "cat.png" in git("lfs", "ls-files", cwd=folder).stdout
    pushed = git("push", git.remote("alice/gallery", "alice"), "main", cwd=folder)
    assert "remote: -----> RUNNING" in pushed.stderr
    served = httpx.get(f"{git.platform.url}/spaces/alice/gallery/cat.png", timeout=30)
    assert served.status_code == 200 and served.content == picture  # the file, not its pointer
    stored = list((git.platform.data_dir / "lfs" / "objects").rglob("*"))
    assert [p.name for p in stored if p.is_file()] == [hashlib.sha256(picture).hexdigest()]

    git("clone", "--quiet", git.remote("alice/gallery", None), "gallery-copy")
    assert (git.root / "gallery-copy" / "cat.png").read_bytes() == picture
    (folder / "dog.png").write_bytes(picture[::-1])
    git.commit(folder, "a picture whose bytes never arrive")
    before = git.remote_main("alice/gallery")
    skipped = subprocess.run(["git", "push", git.remote("alice/gallery", "alice"), "main"], cwd=folder,
                             env={**git.env, "GIT_LFS_SKIP_PUSH": "1"}, capture_output=True, text=True, timeout=300)
    assert skipped.returncode != 0 and "the LFS objects of dog.png were not uploaded" in skipped.stderr
    assert git.remote_main("alice/gallery") == before


def _cli_as(git: Git, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI of someone other than the platform's user: their own token, no access to its data dir."""
    env = {**git.platform.cli_env(), "SPACES_DATA_DIR": str(git.root / "nowhere"),
           "SPACES_CONFIG_DIR": str(git.root / f"config-{user}"), "SPACES_TOKEN": git.tokens[user]}
    return subprocess.run([sys.executable, "-m", "spaces_runtime.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)
