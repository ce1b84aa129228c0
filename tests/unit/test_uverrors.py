"""builder.uverrors: uv's failure output → a message naming the requirements.txt line to fix."""

from __future__ import annotations

from builder.uverrors import explain_install_failure, explain_venv_failure

ORIGINS = {"gradio==6.31.0": "the platform's default SDK version", "fastapi==0.1.0": "requirements.txt line 2",
           "six": "requirements.txt line 1"}
CONFLICT = [
    "Using Python 3.11.7 environment at: /envs/x",
    "error: No solution found when resolving dependencies",
    "  cause: Because gradio>=6.31.0 depends on fastapi>=0.115.2,<1.0 and you require gradio==6.31.0, we can",
    "         conclude that you require fastapi>=0.115.2,<1.0.",
    "         And because you require fastapi==0.1.0, we can conclude that your requirements are unsatisfiable.",
]


def test_a_conflict_blames_the_users_line_not_the_sdk_pin() -> None:
    error = explain_install_failure(list(ORIGINS), ORIGINS, CONFLICT)
    assert str(error).startswith(
        "requirements.txt line 2: 'fastapi==0.1.0' could not be installed: No solution found when resolving "
        "dependencies: Because gradio>=6.31.0 depends on fastapi>=0.115.2,<1.0")
    assert error.log_tail.endswith("your requirements are unsatisfiable.")


def test_a_failure_about_the_sdk_pin_points_at_sdk_version() -> None:
    lines = ["error: Because there is no version of gradio==9.9.9 and you require gradio==9.9.9, we can "
             "conclude that your requirements are unsatisfiable."]
    origins = {"gradio==9.9.9": "sdk_version in README.md"}
    error = explain_install_failure(["gradio==9.9.9"], origins, lines)
    assert str(error).startswith("sdk_version in README.md: 'gradio==9.9.9' could not be installed")
    assert "change sdk_version in README.md" in str(error)


def test_a_failure_naming_no_requirement_still_says_why() -> None:
    error = explain_install_failure(["six"], ORIGINS, ["error: Failed to fetch: connection refused"])
    assert str(error).startswith("installing the requirements failed: Failed to fetch: connection refused")


def test_a_missing_python_says_what_to_write() -> None:
    lines = ["error: No interpreter found for Python 3.99 in managed installations or search path", "",
             "hint: uv embeds available Python downloads"]
    error = explain_venv_failure("3.99", lines, "3.11")
    assert str(error) == (
        "could not create a Python 3.99 virtualenv: No interpreter found for Python 3.99 in managed "
        "installations or search path (set python_version in README.md to one installed on this host "
        "(the platform's default is 3.11), or install Python 3.99)")


def test_the_summary_names_the_line_without_repeating_uvs_words() -> None:
    """The build log and the stage's error show uv's own lines beside the summary: it must not say them again."""
    error = explain_install_failure(list(ORIGINS), ORIGINS, CONFLICT)
    assert error.summary == "requirements.txt line 2: 'fastapi==0.1.0' could not be installed"
    assert explain_venv_failure("3.99", ["error: No interpreter found"], "3.11").summary == (
        "could not create a Python 3.99 virtualenv")
