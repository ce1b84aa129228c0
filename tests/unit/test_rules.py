"""The permission rule, from the side of each person it must stop (pure)."""

from __future__ import annotations

import pytest

from spaces_runtime.auth import rules
from spaces_runtime.auth.principal import ANONYMOUS, Principal
from spaces_runtime.errors import AuthError, ForbiddenError, NotFoundError

ALICE = Principal("alice", orgs={"team": "write", "readers": "read"})
ADMIN = Principal("root", admin=True)


@pytest.mark.parametrize(("who", "owner", "allowed"), [
    (ALICE, "alice", True),
    (ALICE, "team", True),
    (ALICE, "readers", False),  # a read member sees, never writes
    (ALICE, "bob", False),
    (ADMIN, "bob", True),
    (Principal("root", admin=True, cap="read"), "bob", False),  # a read token of an admin reads only
    (Principal("alice", cap="read"), "alice", False),
    (ANONYMOUS, "alice", False),
])
def test_who_may_write_a_namespace(who: Principal, owner: str, allowed: bool) -> None:
    assert rules.may_write(who, owner) is allowed


def test_private_spaces_are_seen_by_owner_members_and_admins_only() -> None:
    assert rules.may_see(ALICE, "alice/x", private=True)
    assert rules.may_see(ALICE, "readers/x", private=True)
    assert rules.may_see(ADMIN, "bob/x", private=True)
    assert not rules.may_see(ALICE, "bob/x", private=True)
    assert not rules.may_see(ANONYMOUS, "alice/x", private=True)
    assert rules.may_see(ANONYMOUS, "bob/x", private=False)


def test_a_share_link_opens_its_one_space_for_anyone() -> None:
    visitor = Principal(None, shared=frozenset({"bob/secret"}))
    assert rules.may_see(visitor, "bob/secret", private=True)
    assert not rules.may_see(visitor, "bob/other", private=True)
    assert not rules.may_write(visitor, "bob")


def test_nobody_gets_401_a_stranger_403_and_a_private_space_404() -> None:
    with pytest.raises(AuthError, match="needs a token"):
        rules.require_write(ANONYMOUS, "bob/site")
    with pytest.raises(ForbiddenError, match="not the namespace of alice"):
        rules.require_write(ALICE, "bob/site")
    with pytest.raises(NotFoundError):
        rules.require_write(ALICE, "bob/secret", private=True)
    with pytest.raises(ForbiddenError, match="role 'read' in readers"):
        rules.require_write(ALICE, "readers/site")
    rules.require_write(ALICE, "team/site", private=True)


def test_only_admins_with_a_write_token_administer() -> None:
    rules.require_admin(ADMIN)
    with pytest.raises(ForbiddenError):
        rules.require_admin(ALICE)
    with pytest.raises(ForbiddenError):
        rules.require_admin(Principal("root", admin=True, cap="read"))
    assert rules.may_manage_org(Principal("alice", orgs={"team": "admin"}), "team")
    assert not rules.may_manage_org(ALICE, "team")
