"""What a space runs on: the owner's setting over the README over the platform's default, each with its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder import spec as specs
from spaces_runtime.deploy import runchoice
from spaces_runtime.errors import InvalidNameError, SpecError
from spaces_runtime.supervisor.tiers import TIERS


def test_the_owner_s_tier_wins_over_the_readme_s_which_wins_over_the_default() -> None:
    assert runchoice.hardware("t4-small", "cpu-upgrade", "cpu-basic", TIERS) == \
        runchoice.Choice("t4-small", "spaces settings")
    assert runchoice.hardware(None, "cpu-upgrade", "cpu-basic", TIERS) == \
        runchoice.Choice("cpu-upgrade", "README suggested_hardware")
    assert runchoice.hardware(None, None, "cpu-basic", TIERS) == runchoice.Choice("cpu-basic", "the platform's default")


def test_a_hub_tier_this_platform_lacks_runs_on_the_default_and_says_so() -> None:
    chosen = runchoice.hardware(None, "zero-a10g", "cpu-basic", TIERS)
    assert chosen.value == "cpu-basic"
    assert chosen.warning is not None and "'zero-a10g' is not a tier here" in chosen.warning
    assert "cpu-upgrade" in chosen.warning  # it names what exists


def test_replicas_beyond_one_only_on_swarm() -> None:
    assert runchoice.replicas(None, 3, "swarm") == runchoice.Choice(3, "README replicas")
    assert runchoice.replicas(2, 3, "swarm") == runchoice.Choice(2, "spaces settings")
    on_process = runchoice.replicas(None, 3, "process")
    assert on_process.value == 1 and on_process.warning is not None and "--backend swarm" in on_process.warning
    assert runchoice.replicas(None, None, "docker") == runchoice.Choice(1, "the platform's default")


def test_an_owner_asking_for_what_cannot_be_is_told_what_can() -> None:
    with pytest.raises(InvalidNameError) as unknown:
        runchoice.check_hardware("h100-giant", TIERS)
    assert "cpu-basic" in (unknown.value.hint or "")
    with pytest.raises(InvalidNameError) as elsewhere:
        runchoice.check_replicas(2, "process", 16)
    assert "--backend swarm" in (elsewhere.value.hint or "")
    with pytest.raises(InvalidNameError):
        runchoice.check_replicas(0, "swarm", 16)
    assert runchoice.check_replicas(1, "process", 16) == 1


def test_the_readme_keys_are_read_and_a_bad_replica_count_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import gradio\n")
    (tmp_path / "README.md").write_text("---\nsdk: gradio\nsuggested_hardware: cpu-upgrade\nreplicas: 3\n---\n")
    spec = specs.load(tmp_path)
    assert (spec.suggested_hardware, spec.replicas, spec.warnings) == ("cpu-upgrade", 3, [])
    (tmp_path / "README.md").write_text("---\nsdk: gradio\nreplicas: lots\n---\n")
    with pytest.raises(SpecError) as bad:
        specs.load(tmp_path)
    assert bad.value.line == 3 and "replicas must be a whole number" in str(bad.value)
