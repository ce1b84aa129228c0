"""Git LFS's pure parts: reading pointer files, and the batch API's answer per object."""

from spaces_runtime.hub.lfs import Pointer, Quota, batch_answer, parse_pointer

OID = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"


def pointer(oid: str = OID, size: str = "12345") -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def test_a_pointer_file_names_its_object_and_anything_else_is_a_file() -> None:
    assert parse_pointer(pointer()) == Pointer(OID, 12345)
    assert parse_pointer(b"just a small text file\n") is None
    assert parse_pointer(pointer(oid="nothex")) is None
    assert parse_pointer(pointer(size="-1")) is None
    assert parse_pointer(pointer() + b"x" * 2000) is None  # too long to be a pointer


def href(oid: str) -> str:
    return f"http://host/spaces/a/b.git/info/lfs/objects/{oid}"


def test_uploads_are_asked_for_unless_this_space_holds_the_object() -> None:
    other = "f" * 64
    answer = batch_answer("upload", [{"oid": OID, "size": 5}, {"oid": other, "size": 7}], held={other},
                          href=href, header={"Authorization": "Basic x"}, max_size=100)
    first, second = answer["objects"]
    assert first["actions"]["upload"] == {"href": href(OID), "header": {"Authorization": "Basic x"}}
    assert "actions" not in second and "error" not in second  # held already: git-lfs skips it
    assert answer["transfer"] == "basic"


def test_downloads_only_of_held_objects_and_bad_or_large_objects_are_refused_one_by_one() -> None:
    answer = batch_answer("download", [{"oid": OID, "size": 5}, {"oid": "e" * 64, "size": 5}], held={OID},
                          href=href, header={}, max_size=100)
    assert answer["objects"][0]["actions"]["download"]["href"] == href(OID)
    assert answer["objects"][1]["error"]["code"] == 404
    refused = batch_answer("upload", [{"oid": OID, "size": 101}, {"oid": "x", "size": 1}], held=set(),
                           href=href, header={}, max_size=100)
    assert [o["error"]["code"] for o in refused["objects"]] == [413, 422]


def test_uploads_that_would_pass_the_quota_are_all_refused_saying_what_is_used_and_what_to_do() -> None:
    held, fresh = "f" * 64, "e" * 64
    quota = Quota(used=60, limit=100)
    objects = [{"oid": OID, "size": 30}, {"oid": fresh, "size": 20}, {"oid": held, "size": 50}]
    answer = batch_answer("upload", objects, held={held}, href=href, header={}, max_size=100,
                          over_quota=lambda adding: quota.refusal("a/b", adding))
    first, second, third = answer["objects"]
    assert first["error"]["code"] == second["error"]["code"] == 507 and "actions" not in first
    message = first["error"]["message"]
    assert "this upload would pass a/b's LFS storage quota" in message and "SPACES_SPACE_STORAGE_BYTES" in message
    assert "error" not in third  # held already: it costs nothing more
    fits = batch_answer("upload", objects[:1], held=set(), href=href, header={}, max_size=100,
                        over_quota=lambda adding: quota.refusal("a/b", adding))
    assert "upload" in fits["objects"][0]["actions"]  # 60 + 30 fits 100
    assert quota.refusal("a/b", 40) is None and quota.refusal("a/b", 41) is not None
