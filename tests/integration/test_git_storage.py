"""What LFS files cost and where they go, with the real git and git-lfs against a real `spaces serve`: a push past
the space's storage quota is refused with git-lfs printing the reason (main unchanged, the usage shown by `spaces
status`); `spaces gc` removes a deleted space's objects but not one another space's commits still reference; a
backup restored into a new data dir keeps every space's history and LFS files (clone, history, rollback)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from test_git import STATIC, Git, _cli_as

from spaces_harness import Platform, write_app

QUOTA = 2 * 2**20
ENV = {"SPACES_RUNNER_ENABLED": "false", "SPACES_SPACE_STORAGE_BYTES": str(QUOTA),
       "SPACES_LFS_GC_GRACE_S": "0"}  # the grace period's rule has its unit test; here gc may take what is unused


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Git]:
    root = tmp_path_factory.mktemp("git-storage")
    platform = Platform(root / "data", env=ENV).start()
    platform.cli("users", "add", "alice", check=True)
    made = platform.cli("tokens", "create", "--user", "alice", "--name", "git", "--json", check=True)
    person = Git(platform, root, {"alice": json.loads(made.stdout)["token"]})
    person("lfs", "install")  # into this module's own home
    yield person
    platform.stop()


def blob(seed: int, size: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(size))


def lfs_repo(git: Git, name: str, files: dict[str, bytes], html: str = "pictures") -> Path:
    folder = write_app(git.root / name, {"README.md": STATIC, "index.html": html})
    for path, content in files.items():
        (folder / path).write_bytes(content)
    git("init", "--quiet", cwd=folder)
    git("lfs", "track", "*.bin", cwd=folder)
    git.commit(folder, "pictures in LFS")
    return folder


def push(git: Git, folder: Path, space: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return git("push", git.remote(space, "alice"), "main", cwd=folder, check=check)


def stored(platform: Platform) -> set[str]:
    return {p.name for p in (platform.data_dir / "lfs" / "objects").rglob("*") if p.is_file()}


def test_a_push_past_the_quota_is_refused_with_git_lfs_saying_why_and_main_stays(git: Git) -> None:
    first = blob(1, 1536 * 1024)
    folder = lfs_repo(git, "heavy", {"one.bin": first})
    assert "remote: -----> RUNNING" in push(git, folder, "alice/heavy").stderr
    status = _cli_as(git, "alice", "status", "alice/heavy")
    assert "storage: 1.5 MiB of LFS files, of its 2 MiB quota" in " ".join(status.stdout.split())
    assert git.platform.space("alice/heavy")["storage"] == {"lfs_bytes": len(first), "quota_bytes": QUOTA}
    files_tab = httpx.get(f"{git.platform.url}/alice/heavy/tree/main", timeout=30)
    assert "Git LFS storage: 1.5 MB of this space's 2.0 MB quota." in files_tab.text

    before = git.remote_main("alice/heavy")
    (folder / "two.bin").write_bytes(blob(2, 1024 * 1024))
    git.commit(folder, "one more picture")
    refused = push(git, folder, "alice/heavy", check=False)
    said = " ".join(refused.stderr.split())
    assert refused.returncode != 0
    assert ("this upload would pass alice/heavy's LFS storage quota: 1.5 MiB used + 1.0 MiB in this upload > "
            "2.0 MiB") in said, said
    assert "SPACES_SPACE_STORAGE_BYTES" in said
    assert git.remote_main("alice/heavy") == before
    assert git.platform.space("alice/heavy")["storage"]["lfs_bytes"] == len(first)


def test_gc_removes_a_deleted_spaces_objects_but_not_one_another_space_still_references(git: Git) -> None:
    own, shared = blob(3, 300 * 1024), blob(4, 200 * 1024)
    push(git, lfs_repo(git, "doomed", {"own.bin": own, "shared.bin": shared}), "alice/doomed")
    push(git, lfs_repo(git, "keeper", {"shared.bin": shared}), "alice/keeper")
    hub = HfApi(endpoint=git.platform.url, token=git.tokens["alice"])
    hub.duplicate_repo("alice/keeper", "alice/twin", repo_type="space")  # the history and its LFS files come along
    git.platform.wait_for("alice/twin", timeout=300)
    assert httpx.get(f"{git.platform.url}/spaces/alice/twin/shared.bin", timeout=30).content == shared
    own_oid, shared_oid = _oid(own), _oid(shared)
    assert {own_oid, shared_oid} <= stored(git.platform)
    deleted = httpx.delete(f"{git.platform.url}/api/spaces/alice/doomed", timeout=60,
                           headers={"Authorization": f"Bearer {git.tokens['alice']}"})
    assert deleted.status_code == 200, deleted.text

    listed = json.loads(git.platform.cli("gc", "--dry-run", "--json", check=True).stdout)
    collect = {row["key"]: row for row in listed["collect"] if row["kind"] == "lfs-object"}
    keep = {row["key"]: row["reason"] for row in listed["keep"] if row["kind"] == "lfs-object"}
    assert set(collect) == {own_oid} and collect[own_oid]["bytes"] == len(own)
    assert keep[shared_oid] == "a commit of alice/keeper, alice/twin references it"
    assert own_oid in stored(git.platform)  # a dry run removes nothing
    shown = git.platform.cli("gc", "--dry-run", check=True).stdout
    assert "lfs-object" in shown and own_oid[:16] in shown

    done = json.loads(git.platform.cli("gc", "--json", check=True).stdout)
    assert done["failures"] == [] and done["freed_bytes"] >= len(own)
    assert own_oid not in stored(git.platform) and shared_oid in stored(git.platform)
    git("clone", "--quiet", git.remote("alice/keeper", "alice"), "keeper-copy")
    assert (git.root / "keeper-copy" / "shared.bin").read_bytes() == shared


def test_a_restored_backup_keeps_each_spaces_history_and_lfs_files(git: Git) -> None:
    picture = blob(5, 400 * 1024)
    folder = lfs_repo(git, "album", {"cat.bin": picture}, html="first page")
    push(git, folder, "alice/album")
    first = git.remote_main("alice/album")
    (folder / "index.html").write_text("second page")
    git.commit(folder, "second page")
    push(git, folder, "alice/album")
    archive = git.root / "backup.tar.gz"
    git.platform.cli("backup", str(archive), check=True)

    fresh = git.root / "elsewhere" / "data"
    git.platform.cli("restore", str(archive), "--data-dir", str(fresh), check=True)
    second = Platform(fresh, env=ENV).start()
    try:
        again = Git(second, git.root / "elsewhere", git.tokens)  # the same tokens: the store came back
        again("lfs", "install")
        second.wait_for("alice/album", timeout=300)
        again("clone", "--quiet", again.remote("alice/album", "alice"), "album-copy")
        copy = again.root / "album-copy"
        assert (copy / "cat.bin").read_bytes() == picture  # the LFS file's content, not its pointer
        log = again("log", "--format=%H %s", cwd=copy).stdout.splitlines()
        assert [line.split(" ", 1)[1] for line in log] == ["second page", "pictures in LFS"]
        assert log[1].split()[0] == first
        history = json.loads(_cli_as(again, "alice", "history", "alice/album", "--json").stdout)
        assert [(e["message"], e["stage"]) for e in history] == [("second page", "RUNNING"),
                                                                  ("pictures in LFS", "RUNNING")]
        rolled = _cli_as(again, "alice", "rollback", "alice/album", first[:7])
        assert rolled.returncode == 0, rolled.stderr
        assert httpx.get(f"{second.url}/spaces/alice/album/", timeout=30).text == "first page"
        assert httpx.get(f"{second.url}/spaces/alice/album/cat.bin", timeout=30).content == picture
    finally:
        second.stop()


def _oid(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()
