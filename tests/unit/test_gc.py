"""What `spaces gc` and the disk budget collect, decided from what exists and what is used (pure)."""

from __future__ import annotations

from spaces_runtime.housekeeping.gc import Item, Usage, decide, human_bytes

NOW = 1_000_000.0
DAY = 86400.0


def env(key: str, size: int = 100, age_days: float = 1.0) -> Item:
    return Item("env", key, size, NOW - age_days * DAY)


def app_image(tag: str, env_hash: str | None, code: str | None, sdk: str = "sdk:1", size: int = 100,
              image_id: str | None = None, age_days: float = 1.0) -> Item:
    return Item("image", tag, size, NOW - age_days * DAY, env_hash=env_hash, code_hash=code, sdk_image=sdk,
                image_id=image_id or f"id-{tag}", names=(tag,))


def verdicts(decision: object) -> dict[str, tuple[bool, str]]:
    return {v.item.key: (v.collect, v.reason) for v in decision.verdicts}  # type: ignore[attr-defined]


def test_an_environment_no_space_names_goes_and_one_a_space_names_stays() -> None:
    usage = Usage(spaces_by_env={"e2": ["me/app"]})
    decision = decide([env("e1", 300), env("e2", 500)], usage, now=NOW)
    found = verdicts(decision)
    assert found["e1"][0] and "no space uses" in found["e1"][1]
    assert found["e2"] == (False, "the environment of me/app")
    assert decision.freed_bytes == 300 and decision.total_bytes == 800


def test_a_locked_or_running_environment_stays_whatever_the_records_say() -> None:
    usage = Usage(busy_envs={"e1": "being built (its build lock is held)", "e3": "process 42 runs in it"})
    found = verdicts(decide([env("e1"), env("e3"), env("e4")], usage, now=NOW))
    assert found["e1"] == (False, "being built (its build lock is held)")
    assert found["e3"] == (False, "process 42 runs in it")
    assert found["e4"][0]


def test_scratch_of_a_crashed_build_goes_unless_that_build_runs_again() -> None:
    crashed = Item("env-scratch", ".tmp-e1-abc", 50, NOW, env_hash="e1")
    again = Item("env-scratch", ".tmp-e2-def", 50, NOW, env_hash="e2")
    usage = Usage(spaces_by_env={"e1": ["me/app"]}, busy_envs={"e2": "being built (its build lock is held)"})
    found = verdicts(decide([crashed, again], usage, now=NOW))
    assert found[".tmp-e1-abc"] == (True, "left by a build that did not finish")
    assert found[".tmp-e2-def"][0] is False


def test_an_app_image_stays_while_a_space_runs_that_code_in_that_environment() -> None:
    images = [app_image("app:a", "e1", "c1"), app_image("app:b", "e1", "c0"), app_image("app:c", None, None),
              app_image("app:d", "e9", "c9", image_id="sha-d")]
    usage = Usage(spaces_by_code={("e1", "c1"): ["me/app"]}, container_images=frozenset({"sha-d"}))
    found = verdicts(decide(images, usage, now=NOW))
    assert found["app:a"] == (False, "the image of me/app")
    assert found["app:b"][0]  # an older code version of the same space
    assert found["app:c"][0] is False and "no env/code labels" in found["app:c"][1]
    assert found["app:d"] == (False, "a container was created from it")


def test_an_sdk_image_goes_only_when_no_app_image_that_stays_was_built_on_it() -> None:
    images = [app_image("app:a", "e1", "c1", sdk="sdk:kept"), app_image("app:b", "e2", "c2", sdk="sdk:gone"),
              Item("sdk-image", "sdk:kept", 400, NOW, image_id="k"), Item("sdk-image", "sdk:gone", 400, NOW,
                                                                          image_id="g")]
    usage = Usage(spaces_by_code={("e1", "c1"): ["me/app"]})
    found = verdicts(decide(images, usage, now=NOW))
    assert found["sdk:kept"][0] is False and found["sdk:gone"][0] is True


def test_build_cache_used_lately_stays_for_spaces_gc_unless_a_build_holds_it() -> None:
    cache = [Item("build-cache", "old", 10, NOW - 30 * DAY), Item("build-cache", "new", 10, NOW - 1 * DAY),
             Item("build-cache", "busy", 10, NOW - 30 * DAY, in_use=True)]
    found = verdicts(decide(cache, Usage(), now=NOW))
    assert found["old"][0] and not found["new"][0] and not found["busy"][0]
    assert "7 days" in found["new"][1]


def test_under_the_budget_nothing_goes() -> None:
    decision = decide([env("e1", 300), env("e2", 300)], Usage(), now=NOW, budget_bytes=1000)
    assert decision.collected == []
    assert all("fits the disk budget" in v.reason for v in decision.kept)


def test_over_the_budget_the_least_recently_used_unused_things_go_until_it_fits() -> None:
    items = [env("oldest", 300, age_days=30), env("older", 300, age_days=20), env("recent", 300, age_days=1),
             env("used", 300, age_days=40), Item("build-cache", "fresh-cache", 300, NOW - 60)]
    usage = Usage(spaces_by_env={"used": ["me/app"]})
    decision = decide(items, usage, now=NOW, budget_bytes=900)  # 1500 kept: 600 must go
    found = verdicts(decision)
    assert {v.item.key for v in decision.collected} == {"oldest", "older"}
    assert found["recent"] == (False, "unused, but the total already fits the disk budget")
    assert found["used"][0] is False
    assert found["oldest"][1].startswith("over the disk budget: ")


def test_over_the_budget_recent_build_cache_may_go_too() -> None:
    decision = decide([Item("build-cache", "fresh", 500, NOW - 60)], Usage(), now=NOW, budget_bytes=100)
    assert [v.item.key for v in decision.collected] == ["fresh"]


def test_measured_caches_count_for_the_budget_but_are_never_removed() -> None:
    uv = Item("uv-cache", "/cache/uv", 10_000, NOW, collectable=False)
    decision = decide([uv, env("e1", 100)], Usage(), now=NOW, budget_bytes=500)
    assert [v.item.key for v in decision.collected] == ["e1"]
    assert decision.total_bytes == 10_100


def test_sizes_read_as_people_write_them() -> None:
    assert human_bytes(999) == "999 B"
    assert human_bytes(1_500_000) == "1.5 MB"
    assert human_bytes(3 * 10**12) == "3000.0 GB"


def test_an_lfs_object_goes_once_no_commit_references_it_and_its_grace_period_is_over() -> None:
    def lfs(oid: str, age_s: float) -> Item:
        return Item("lfs-object", oid, 1000, NOW - age_s)

    usage = Usage(lfs_refs={"shared": ["bob/kept"]}, lfs_grace_s=3600)
    found = verdicts(decide([lfs("shared", 5 * DAY), lfs("orphan", 2 * 3600), lfs("pushing", 60)], usage, now=NOW))
    assert found["shared"] == (False, "a commit of bob/kept references it")
    assert found["orphan"][0] and "no commit of any space references it" in found["orphan"][1]
    assert not found["pushing"][0] and "a push in progress may reference it" in found["pushing"][1]
