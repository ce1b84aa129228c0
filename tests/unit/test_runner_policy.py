"""The runner's pure policy: fair batching across apps, admission, dispatch timing, quotas, eviction, codec."""

from __future__ import annotations

import numpy as np
import pytest

from spaces_runtime.appkit.wire import decode, encode, error_from
from spaces_runtime.errors import BadInputError, BusyError, QuotaExceededError
from spaces_runtime.runner import batching, catalog
from spaces_runtime.runner.batching import BatchLimits, ModelQueue, Pending, QuotaLedger
from spaces_runtime.runner.residency import Resident, choose_evictions


def req(app: str, n: int = 1, t: float = 0.0, deadline: float = 100.0) -> Pending:
    return Pending(app, "m", n, t, deadline)


def test_a_flooding_app_cannot_keep_a_light_app_out_of_the_next_batch() -> None:
    q = ModelQueue()
    for i in range(50):
        q.push(req("flood", 4, t=i * 0.001))
    q.push(req("light", 1, t=1.0))
    batch, _ = q.take(32, now=1.0)
    assert "light" in [p.app for p in batch]
    assert sum(p.n for p in batch) <= 32


def test_batches_take_whole_requests_and_a_big_request_runs_alone() -> None:
    q = ModelQueue()
    q.push(req("a", 40))
    q.push(req("b", 3))
    first, _ = q.take(32, now=0)
    second, _ = q.take(32, now=0)
    assert [p.n for p in first] == [40] and [p.n for p in second] == [3]
    assert q.items == 0 and q.oldest() is None


def test_expired_requests_leave_the_queue_and_are_reported() -> None:
    q = ModelQueue()
    q.push(req("a", 1, deadline=1.0))
    q.push(req("b", 1, deadline=10.0))
    batch, expired = q.take(32, now=5.0)
    assert [p.app for p in expired] == ["a"] and [p.app for p in batch] == ["b"]


def test_admission_answers_busy_with_a_retry_after_from_the_drain_rate() -> None:
    q = ModelQueue()
    limits = BatchLimits(max_queue_items=100, max_queue_items_per_app=10)
    q.push(req("a", 10))
    with pytest.raises(BusyError) as err:
        batching.admit(q, "a", 1, limits, items_per_s=20)
    assert err.value.retry_after_s == 0.5
    batching.admit(q, "b", 5, limits, items_per_s=20)  # another app still gets in


def test_a_lone_caller_is_dispatched_at_once_and_a_crowd_waits_for_company() -> None:
    limits = BatchLimits(max_batch_items=32, max_delay_s=0.01)
    q = ModelQueue()
    q.push(req("a", 1, t=0.0))
    assert batching.should_dispatch(q, 0.0, limits, expected_requests=1)
    assert not batching.should_dispatch(q, 0.001, limits, expected_requests=32)
    assert batching.should_dispatch(q, 0.02, limits, expected_requests=32)


def test_device_seconds_are_split_by_items_and_quotas_slide() -> None:
    charge = batching.split_charge(1.0, [req("a", 3), req("b", 1)])
    assert charge == {"a": 0.75, "b": 0.25}
    ledger = QuotaLedger(window_s=10, default_limit_s=0.5)
    ledger.charge("a", 0.75, now=0)
    with pytest.raises(QuotaExceededError, match="0.75 of its 0.5 device-seconds") as caught:
        ledger.check("a", now=1)
    assert caught.value.retry_after_s == 9  # the charge leaves the 10 s window at t=10
    again = error_from(429, b'{"error": {"code": "quota_exceeded", "message": "m", "retry_after_s": 9}}')
    assert isinstance(again, QuotaExceededError) and again.retry_after_s == 9  # survives the wire
    ledger.check("b", now=1)
    ledger.check("a", now=11)  # the window slid past the charge


def test_eviction_takes_least_recently_used_and_spares_pins() -> None:
    resident = [Resident("old", 60, 1.0), Resident("pinned", 30, 0.0), Resident("new", 30, 5.0)]
    assert choose_evictions(resident, "x", 40, 130, frozenset({"pinned"})) == ["old"]
    assert choose_evictions(resident, "x", 10, 130) == []
    assert choose_evictions(resident, "x", 500, 130, frozenset({"pinned"})) == ["old", "new"]


def test_codec_round_trips_arrays_bytes_and_json_without_float_lists() -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = encode({"inputs": ["a"], "x": 1}, {"arr": arr, "raw": b"\x00\x01"})
    assert b"[0.0," not in data
    meta, parts = decode(data)
    assert meta == {"inputs": ["a"], "x": 1} and parts["raw"] == b"\x00\x01"
    np.testing.assert_array_equal(parts["arr"], arr)
    with pytest.raises(BadInputError):
        decode(b"not a message")


def test_errors_come_back_typed_from_their_code() -> None:
    err = error_from(503, b'{"error": {"code": "busy", "message": "full", "retry_after_s": 2.5}}')
    assert isinstance(err, BusyError) and err.retry_after_s == 2.5


def test_tensor_inputs_are_checked_against_the_declared_shape_and_dtype() -> None:
    spec = catalog.uploaded_spec("shapes", {"task": "image-classification", "input_shape": [3, 8, 8]},
                                 catalog.Path("/nonexistent.pt"))
    payload, n = catalog.validate(spec, {}, {"inputs": np.zeros((3, 8, 8), np.float32)})
    assert n == 1 and payload["array"].shape == (1, 3, 8, 8)
    with pytest.raises(BadInputError, match="dtype float64.*float32"):
        catalog.validate(spec, {}, {"inputs": np.zeros((2, 3, 8, 8))})
    with pytest.raises(BadInputError, match=r"\(N, 3, 8, 8\)"):
        catalog.validate(spec, {}, {"inputs": np.zeros((2, 3, 4, 4), np.float32)})
