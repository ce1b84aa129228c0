"""The liveness policy: when a running app is checked, and when unanswered checks make it hung (pure)."""

from __future__ import annotations

from spaces_runtime.supervisor.probes import LivenessPolicy


def test_a_check_is_due_once_the_interval_has_passed() -> None:
    policy = LivenessPolicy(interval_s=10)
    assert not policy.due(last_checked=100.0, now=109.9)
    assert policy.due(last_checked=100.0, now=110.0)


def test_an_interval_of_zero_turns_liveness_checks_off() -> None:
    assert not LivenessPolicy(interval_s=0).due(last_checked=0.0, now=1e9)


def test_only_unanswered_checks_in_a_row_make_an_app_hung() -> None:
    policy = LivenessPolicy(failures=3)
    count = 0
    for answered in (False, False, True, False, False):  # a slow moment in between is not a hang
        count = policy.count(count, answered)
        assert not policy.is_hung(count)
    count = policy.count(count, answered=False)
    assert count == 3 and policy.is_hung(count)


def test_an_unanswered_check_of_an_app_that_answered_visitors_meanwhile_is_not_a_failure() -> None:
    """A host starved of CPU: the health check misses its timeout, yet the app streams to its visitors."""
    policy = LivenessPolicy(failures=3)
    count = 0
    for _ in range(10):
        count = policy.count(count, answered=False, served=True)
    assert count == 0 and not policy.is_hung(count)
    for _ in range(3):  # the app stopped answering its visitors too: that is a hang
        count = policy.count(count, answered=False, served=False)
    assert policy.is_hung(count)


def test_the_probe_timeout_connects_quickly_but_waits_for_the_answer() -> None:
    timeout = LivenessPolicy(timeout_s=5).timeout()
    assert timeout.read == 5 and timeout.connect == 2
    assert LivenessPolicy(timeout_s=0.5).timeout().connect == 0.5
