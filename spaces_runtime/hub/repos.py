"""Each space's bare git repository under {data_dir}/git/OWNER/NAME.git, driven through the git binary.

The platform writes commits without a work tree (a scratch index over the folder, ``write-tree``, ``commit-tree``,
then ``update-ref`` guarded by the old value, so a push landing meanwhile is never overwritten), and installs the
hooks that make a push to ``main`` deploy (see hub/hooks.py). Git runs with no system or global configuration: the
platform's user's own settings must not change what a space's history holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from spaces_runtime.errors import ConflictError, InvalidNameError, NotFoundError, SpacesError
from spaces_runtime.hub.git import HOOKS, MAIN, ZERO
from spaces_runtime.hub.lfs import MAX_POINTER, Pointer, parse_pointer

COMMIT_PATTERN = re.compile(r"[0-9a-f]{4,40}")
_FIELD, _RECORD = "\x1f", "\x1e"
LOG_FORMAT = _FIELD.join(("%H", "%an", "%ae", "%aI", "%s")) + _RECORD


class GitCommandError(SpacesError):
    """git itself failed: its words are in the message."""


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    email: str
    date: str  # ISO-8601, as git has it
    message: str  # the subject line


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What git children get: a PATH, and no configuration but the repository's own."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "HOME": os.devnull, **(extra or {})}


class SpaceRepos:
    def __init__(self, root: Path, hooks: dict[str, str]) -> None:
        self.root = root
        self.hooks = hooks  # hook name → the script installed under that name in every repository

    @staticmethod
    def available() -> bool:
        return shutil.which("git") is not None

    def path(self, space_id: str) -> Path:
        owner, name = space_id.split("/", 1)
        return self.root / owner / f"{name}.git"

    def exists(self, space_id: str) -> bool:
        return (self.path(space_id) / "HEAD").is_file()

    def ensure(self, space_id: str) -> Path:
        """The repository, made on first use; its hooks are (re)written whenever they differ from this
        platform's (an upgrade, another interpreter)."""
        repo = self.path(space_id)
        if not self.exists(space_id):
            repo.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(dir=repo.parent, prefix=f".{repo.name}-"))
            run_git(scratch, "init", "--quiet", "--bare", "--initial-branch=main", ".")
            for key, value in (("core.logAllRefUpdates", "true"), ("uploadpack.allowFilter", "true"),
                               ("receive.advertisePushOptions", "false"), ("gc.auto", "0")):
                run_git(scratch, "config", key, value)
            try:
                scratch.rename(repo)  # another request made it meanwhile: theirs stands
            except OSError:
                shutil.rmtree(scratch, ignore_errors=True)
        self._install_hooks(repo)
        return repo

    def _install_hooks(self, repo: Path) -> None:
        for name in HOOKS:
            hook = repo / "hooks" / name
            text = self.hooks.get(name)
            if text is None or (hook.is_file() and hook.read_text() == text):
                continue
            hook.parent.mkdir(exist_ok=True)
            scratch = hook.with_suffix(".new")
            scratch.write_text(text)
            scratch.chmod(0o755)
            scratch.replace(hook)

    def remove(self, space_id: str) -> None:
        shutil.rmtree(self.path(space_id), ignore_errors=True)

    # --- reading ----------------------------------------------------------------------------------------------
    def head(self, space_id: str) -> str | None:
        """The commit ``main`` points at; None for a space without code in git yet. Read from the ref files, not
        by starting git: every answer about the space shows it."""
        repo = self.path(space_id)
        with contextlib.suppress(OSError):
            return (repo / MAIN).read_text().strip() or None
        with contextlib.suppress(OSError):
            for line in (repo / "packed-refs").read_text().splitlines():
                sha, _, ref = line.partition(" ")
                if ref == MAIN:
                    return sha
        return None

    def resolve(self, space_id: str, commit: str) -> str:
        """A commit id (whole or abbreviated) of this space → the whole id; 404 when it has no such commit."""
        commit = commit.strip().lower()
        if not COMMIT_PATTERN.fullmatch(commit):
            raise InvalidNameError(f"{commit!r} is not a commit id", hint="give 4 to 40 hex digits, as "
                                   "`spaces history OWNER/NAME` shows them")
        if self.exists(space_id):
            found = _try_git(self.path(space_id), "rev-parse", "--quiet", "--verify", f"{commit}^{{commit}}")
            if found:
                return found
        raise NotFoundError(f"{space_id} has no commit {commit}", hint="`spaces history` lists its commits")

    def log(self, space_id: str, limit: int = 50) -> list[CommitInfo]:
        """``main``'s commits, newest first (its first parents: what main was after each push or deploy)."""
        if self.head(space_id) is None:
            return []
        text = run_git(self.path(space_id), "log", "--first-parent", f"--max-count={limit}",
                       f"--format={LOG_FORMAT}", MAIN)
        return [CommitInfo(*record.strip("\n").split(_FIELD)) for record in text.split(_RECORD)
                if record.strip()]

    def archive(self, space_id: str, commit: str, out: Path, objects: dict[str, str] | None = None) -> Path:
        """The commit's tree as a tar at ``out``. ``objects``: the GIT_OBJECT_DIRECTORY and
        GIT_ALTERNATE_OBJECT_DIRECTORIES of a push still in quarantine (its objects are not in the repository
        until its pre-receive hook accepts it)."""
        run_git(self.path(space_id), "archive", "--format=tar", f"--output={out}", commit, env=objects)
        return out

    def lfs_references(self, space_id: str, commits: list[str]) -> set[str]:
        """The oids of the LFS objects that the files of any commit reachable from a ref, or from ``commits``
        (the deploys recorded, whichever are still there), point at. Unreachable commits (history a force-push
        rewrote, kept only in reflogs) do not count."""
        repo = self.path(space_id)
        if not self.exists(space_id):
            return set()
        listed = _git_input(repo, ["rev-list", "--objects", "--all", "--stdin", "--ignore-missing"],
                            "\n".join(commits) + "\n")
        oids = "\n".join(line.split(" ", 1)[0] for line in listed.decode().splitlines() if line)
        checked = _git_input(repo, ["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"], oids)
        small = set()
        for line in checked.decode().splitlines():
            oid, kind, size = [*line.split(), "", ""][:3]
            if kind == "blob" and size.isdigit() and int(size) <= MAX_POINTER:
                small.add(oid)
        return {pointer.oid for pointer in pointers(repo, small).values()}

    # --- writing ----------------------------------------------------------------------------------------------
    def commit_folder(self, space_id: str, folder: Path, author: Author, message: str) -> str:
        """Make ``folder``'s files the next commit of ``main`` (the same commit again when nothing changed)."""
        repo = self.ensure(space_id)
        with tempfile.TemporaryDirectory(prefix="spaces-index-") as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index"), "GIT_WORK_TREE": str(folder)}
            # --force: the files were deployed, so they are the commit, whatever the app's .gitignore says
            run_git(repo, "add", "--all", "--force", ".", env=env, cwd=folder)
            tree = run_git(repo, "write-tree", env=env)
        return self._advance(repo, tree, author, message)

    def restore(self, space_id: str, commit: str, author: Author, message: str) -> str:
        """A new commit on ``main`` with ``commit``'s tree (history is kept: a rollback is a step forward)."""
        repo = self.ensure(space_id)
        tree = run_git(repo, "rev-parse", "--verify", f"{self.resolve(space_id, commit)}^{{tree}}")
        return self._advance(repo, tree, author, message)

    def _advance(self, repo: Path, tree: str, author: Author, message: str) -> str:
        for _ in range(5):
            parent = _head(repo)
            if parent is not None and run_git(repo, "rev-parse", f"{parent}^{{tree}}") == tree:
                return parent
            env = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
                   "GIT_COMMITTER_NAME": "spaces-runtime", "GIT_COMMITTER_EMAIL": author.email}
            commit = run_git(repo, "commit-tree", tree, *(("-p", parent) if parent else ()), "-m", message, env=env)
            if _try_git(repo, "update-ref", "-m", message, MAIN, commit, parent or ZERO) is not None:
                return commit
        raise ConflictError(f"main of {repo.name} kept moving while the platform committed to it",
                            hint="pushes are landing continuously; try again")


def _head(repo: Path) -> str | None:
    return _try_git(repo, "rev-parse", "--quiet", "--verify", f"{MAIN}^{{commit}}")


def pointers(repo: Path, oids: set[str]) -> dict[str, Pointer]:
    """Which of these small blobs are git-lfs pointers (one ``git cat-file --batch`` for all of them)."""
    if not oids:
        return {}
    data = _git_input(repo, ["cat-file", "--batch"], "\n".join(oids))
    found: dict[str, Pointer] = {}
    at = 0
    while at < len(data):
        end = data.index(b"\n", at)
        head = data[at:end].decode().split()
        if len(head) != 3:  # "OID missing"
            at = end + 1
            continue
        content = data[end + 1:end + 1 + int(head[2])]
        at = end + 2 + int(head[2])
        if (pointer := parse_pointer(content)) is not None:
            found[head[0]] = pointer
    return found


def _git_input(repo: Path, args: list[str], stdin: str) -> bytes:
    done = subprocess.run(["git", f"--git-dir={repo}", *args], input=stdin.encode(), capture_output=True,
                          env=git_env(), check=False)
    if done.returncode != 0:
        raise GitCommandError(f"git {args[0]} failed in {repo}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def run_git(repo: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", f"--git-dir={repo}", *args], cwd=cwd or repo, env=git_env(env),
                          capture_output=True, text=True, errors="replace", check=False)
    if done.returncode != 0:
        raise GitCommandError(f"git {args[0]} failed in {repo}: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def _try_git(repo: Path, *args: str) -> str | None:
    try:
        return run_git(repo, *args)
    except GitCommandError:
        return None
