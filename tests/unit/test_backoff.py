"""Restart backoff and crash-loop decisions: how long a crashed app waits, and when the platform gives up."""

from spaces_runtime.config import Settings
from spaces_runtime.supervisor.backoff import RestartPolicy

POLICY = RestartPolicy(initial_s=1.0, max_s=60.0, loop_restarts=5, loop_window_s=120.0)


def test_first_restart_waits_the_initial_delay() -> None:
    assert POLICY.delay([], now=1000.0) == 1.0


def test_each_recent_restart_doubles_the_delay() -> None:
    restarts: list[float] = []
    delays = []
    for now in (10.0, 20.0, 30.0, 40.0):
        delays.append(POLICY.delay(restarts, now))
        restarts.append(now)
    assert delays == [1.0, 2.0, 4.0, 8.0]


def test_delay_is_capped() -> None:
    restarts = [float(t) for t in range(100)]
    assert POLICY.delay(restarts, now=100.0) == 60.0


def test_an_app_that_ran_quietly_for_a_window_starts_over_at_the_initial_delay() -> None:
    assert POLICY.delay([0.0, 1.0, 2.0], now=500.0) == 1.0


def test_crash_loop_after_the_limit_inside_the_window() -> None:
    assert not POLICY.gives_up([10.0, 20.0, 30.0, 40.0], now=50.0)
    assert POLICY.gives_up([10.0, 20.0, 30.0, 40.0, 45.0], now=50.0)


def test_old_crashes_do_not_count_towards_a_crash_loop() -> None:
    assert not POLICY.gives_up([0.0, 1.0, 2.0, 3.0, 4.0], now=200.0)


def test_policy_comes_from_settings() -> None:
    settings = Settings(restart_backoff_initial_s=0.5, restart_backoff_max_s=4, crash_loop_restarts=3,
                        crash_loop_window_s=10)
    policy = RestartPolicy.from_settings(settings)
    assert policy.delay([1.0, 2.0, 3.0, 4.0], now=5.0) == 4.0
    assert policy.gives_up([1.0, 2.0, 3.0], now=5.0)
