"""builder.spec: an app folder's README front matter and requirement files → AppSpec, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.spec import AppSpec, detect_defaults, load
from spaces_runtime.errors import NoAppFileError, SpecError

GRADIO_APP = "import gradio as gr\n\ngr.Interface(lambda x: x, 'text', 'text').launch()\n"


def make_app(root: Path, front: str | None, files: dict[str, str] | None = None, name: str = "my-app") -> Path:
    """An app folder; ``front`` is the YAML between the --- lines (None: no README)."""
    folder = root / name
    folder.mkdir()
    if front is not None:
        (folder / "README.md").write_text(f"---\n{front}---\n\n# Hello\n", encoding="utf-8")
    for path, content in ({"app.py": GRADIO_APP} if files is None else files).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(content, encoding="utf-8")
    return folder


def spec_error(root: Path, front: str, files: dict[str, str] | None = None) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load(make_app(root, front, files))
    return caught.value


FULL = """\
title: Echo Chamber
emoji: 🦜
colorFrom: pink
colorTo: purple
sdk: gradio
sdk_version: 4.10
python_version: 3.10
app_file: src/main.py
app_port: 8000
short_description: Says it back
pinned: true
tags: [demo, audio]
models:
  - org/model-a
license: apache-2.0
startup_duration_timeout: 1h30m
fullWidth: true
header: mini
disable_embedding: true
custom_headers:
  cross-origin-embedder-policy: require-corp
"""


def test_every_known_key_reaches_its_field(tmp_path: Path) -> None:
    spec = load(make_app(tmp_path, FULL, {"src/main.py": GRADIO_APP}))
    assert (spec.title, spec.emoji, spec.color_from, spec.color_to) == ("Echo Chamber", "🦜", "pink", "purple")
    assert (spec.sdk, spec.app_file, spec.app_port) == ("gradio", "src/main.py", 8000)
    # written unquoted, YAML would read these as the floats 4.1 and 3.1
    assert (spec.sdk_version, spec.python_version) == ("4.10", "3.10")
    assert spec.short_description == "Says it back"
    assert spec.pinned and spec.full_width and spec.disable_embedding
    assert spec.tags == ["demo", "audio"] and spec.models == ["org/model-a"]
    assert spec.license == "apache-2.0"
    assert spec.startup_duration_timeout == 5400
    assert spec.header == "mini"
    assert spec.custom_headers == {"cross-origin-embedder-policy": "require-corp"}
    assert spec.warnings == [] and spec.extra == {}
    assert spec.readme_body == "# Hello\n" and not spec.detected


def test_defaults_follow_hugging_face(tmp_path: Path) -> None:
    spec = load(make_app(tmp_path, "sdk: gradio\n", name="cool_demo-app"))
    assert spec.title == "Cool Demo App" and spec.emoji == "🚀"
    assert spec.app_file == "app.py" and spec.app_port == 7860
    assert spec.sdk_version is None and spec.python_version is None and spec.startup_duration_timeout is None
    assert spec.header == "default" and not spec.pinned
    assert spec.color_from != spec.color_to


def test_streamlit_finds_streamlit_app_py(tmp_path: Path) -> None:
    spec = load(make_app(tmp_path, "sdk: streamlit\n", {"streamlit_app.py": "import streamlit as st\n"}))
    assert spec.app_file == "streamlit_app.py"


def test_static_defaults_to_index_html(tmp_path: Path) -> None:
    spec = load(make_app(tmp_path, "sdk: static\n", {"index.html": "<h1>hi</h1>"}))
    assert spec.app_file == "index.html"


def test_detects_gradio_without_readme(tmp_path: Path) -> None:
    spec = load(make_app(tmp_path, None, name="echo_bot"))
    assert spec.sdk == "gradio" and spec.detected and spec.title == "Echo Bot" and spec.app_file == "app.py"


def test_detects_streamlit_without_front_matter(tmp_path: Path) -> None:
    folder = make_app(tmp_path, None, {"streamlit_app.py": "from streamlit import title\n"})
    (folder / "README.md").write_text("# Just words\n")
    spec = load(folder)
    assert spec.sdk == "streamlit" and spec.app_file == "streamlit_app.py"
    assert spec.readme_body == "# Just words\n"


def test_folder_without_app_or_front_matter_is_no_app_file(tmp_path: Path) -> None:
    with pytest.raises(NoAppFileError, match=r"README\.md: README\.md has no front matter and no app\.py"):
        load(make_app(tmp_path, None, {"notes.txt": "hi"}))


def test_missing_sdk_is_inferred_with_a_warning(tmp_path: Path) -> None:
    spec = load(make_app(tmp_path, "title: Hi\n"))
    assert spec.sdk == "gradio"
    assert any("add 'sdk: gradio'" in w for w in spec.warnings)


def test_unknown_keys_are_kept_and_warned_about(tmp_path: Path) -> None:
    spec = load(make_app(tmp_path, "sdk: gradio\ncolourFrom: red\nhf_oauth: true\nmood: happy\n"))
    assert spec.extra == {"colourFrom": "red", "hf_oauth": True, "mood": "happy"}
    assert spec.warnings == [
        "README.md line 3: unknown key 'colourFrom' (did you mean 'colorFrom'?)",
        "README.md line 4: 'hf_oauth' is a Hugging Face Hub setting that spaces-runtime ignores",
        "README.md line 5: unknown key 'mood' (it is kept but not used)",
    ]


@pytest.mark.parametrize(("front", "message"), [
    ("title: x\nsdk: gradoi\n",
     "README.md line 3: sdk 'gradoi' is not one of gradio, streamlit, docker, static"),
    ("sdk: gradio\ncolorFrom: 7\n",
     "README.md line 3: colorFrom must be a string, one of red, yellow, green, blue, indigo, purple, pink, "
     "gray; found the number 7"),
    ("sdk: gradio\ncolorTo: teal\n", "README.md line 3: colorTo 'teal' is not one of red, yellow"),
    ("sdk: gradio\napp_port: web\n", "README.md line 3: app_port must be a whole number (a port like 7860)"),
    ("sdk: gradio\napp_port: 70000\n", "README.md line 3: app_port 70000 is not a port"),
    ("sdk: gradio\npinned: maybe\n", "README.md line 3: pinned must be true or false, found 'maybe'"),
    ("sdk: gradio\ntags: {a: 1}\n", "README.md line 3: tags must be a list of strings"),
    ("sdk: gradio\nsdk_version: latest\n", "README.md line 3: sdk_version 'latest' is not a version number"),
    ("sdk: gradio\npython_version: 2.7\n", "README.md line 3: python_version '2.7' is not a Python 3 version"),
    ("sdk: gradio\nstartup_duration_timeout: soon\n",
     "README.md line 3: startup_duration_timeout 'soon' is not a duration; write one like \"30m\""),
    ("sdk: gradio\nheader: big\n", "README.md line 3: header 'big' is not one of mini, default"),
    ("sdk: gradio\ntitle: [a]\n", "README.md line 3: title must be a string, found a list"),
    ("sdk: gradio\ncustom_headers: yes\n", "README.md line 3: custom_headers must be a mapping"),
    ("sdk: gradio\nsdk: streamlit\n", "README.md line 3: key 'sdk' appears twice (first on line 2)"),
    ("- sdk\n", "README.md line 2: the front matter must be 'key: value' lines"),
])
def test_wrong_values_name_the_line_and_the_fix(tmp_path: Path, front: str, message: str) -> None:
    error = spec_error(tmp_path, front)
    assert str(error).startswith(message)
    assert error.file == "README.md" and error.line == int(message.split(" line ")[1].split(":")[0])


def test_bad_yaml_points_at_the_yaml_errors_line(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "sdk: gradio\ntitle: a: b\n")
    assert error.line == 3
    assert "not valid YAML" in str(error) and "mapping values are not allowed here" in str(error)


def test_unclosed_front_matter(tmp_path: Path) -> None:
    folder = make_app(tmp_path, None)
    (folder / "README.md").write_text("---\nsdk: gradio\n")
    with pytest.raises(SpecError, match=r"README\.md line 1: .*no closing '---' line"):
        load(folder)


@pytest.mark.parametrize("app_file", ["../x.py", "/etc/passwd", "src/../../x.py", "C:\\app.py"])
def test_app_file_outside_the_folder_is_refused(tmp_path: Path, app_file: str) -> None:
    (tmp_path / "x.py").write_text("import gradio\n")
    error = spec_error(tmp_path, f"sdk: gradio\napp_file: '{app_file}'\n")
    assert error.line == 3 and not isinstance(error, NoAppFileError)
    assert "inside" in str(error) or "outside" in str(error)


def test_app_file_symlinked_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.py"
    outside.write_text("import gradio\n")
    folder = make_app(tmp_path, "sdk: gradio\napp_file: link.py\n")
    (folder / "link.py").symlink_to(outside)
    with pytest.raises(SpecError, match="outside the app folder"):
        load(folder)


def test_missing_app_file_lists_candidates(tmp_path: Path) -> None:
    with pytest.raises(NoAppFileError) as caught:
        load(make_app(tmp_path, "sdk: gradio\napp_file: main.py\n", {"demo.py": GRADIO_APP}))
    assert str(caught.value) == ("README.md line 3: app_file 'main.py' is not in the app folder; "
                                 "files that could be it: demo.py")


def test_missing_default_app_file(tmp_path: Path) -> None:
    with pytest.raises(NoAppFileError, match=r"no app\.py in the app folder"):
        load(make_app(tmp_path, "sdk: gradio\n", {}))


def test_requirement_files_keep_line_numbers(tmp_path: Path) -> None:
    files = {
        "app.py": GRADIO_APP,
        "requirements.txt": "# models\n\nnumpy>=1.26  # arrays\nsix\n",
        "pre-requirements.txt": "pip>=24\n",
        "packages.txt": "\nffmpeg\n",
    }
    spec = load(make_app(tmp_path, "sdk: gradio\n", files))
    assert (spec.requirements, spec.requirement_lines) == (["numpy>=1.26", "six"], [3, 4])
    assert (spec.pre_requirements, spec.pre_requirement_lines) == (["pip>=24"], [1])
    assert (spec.packages, spec.package_lines) == (["ffmpeg"], [2])


@pytest.mark.parametrize(("line", "message"), [
    ("-r other.txt", "requirements.txt line 2: '-r other.txt' includes another file"),
    ("-e .", "requirements.txt line 2: '-e .' installs local code"),
    ("./mylib", "requirements.txt line 2: './mylib' installs local code"),
    ("foo @ file:///tmp/foo-1.0-py3-none-any.whl", "requirements.txt line 2: 'foo @ file:///tmp/foo-1.0-py3"),
    ("--find-links /tmp/wheels", "requirements.txt line 2: '--find-links /tmp/wheels' installs local code"),
    ("-f=/tmp/wheels", "requirements.txt line 2: '-f=/tmp/wheels' installs local code"),
])
def test_requirements_that_escape_the_hash_are_refused(tmp_path: Path, line: str, message: str) -> None:
    error = spec_error(tmp_path, "sdk: gradio\n", {"app.py": GRADIO_APP, "requirements.txt": f"six\n{line}\n"})
    assert str(error).startswith(message) and error.file == "requirements.txt" and error.line == 2


def test_remote_sources_are_kept(tmp_path: Path) -> None:
    lines = "--find-links https://download.pytorch.org/whl/torch_stable.html\nfoo @ https://example.org/foo.whl\n"
    spec = load(make_app(tmp_path, "sdk: gradio\n", {"app.py": GRADIO_APP, "requirements.txt": lines}))
    assert spec.requirements == lines.strip().split("\n")


def test_detect_defaults_is_stable_and_varied() -> None:
    first = detect_defaults("weather-bot")
    assert first == detect_defaults("weather-bot")
    assert first["title"] == "Weather Bot" and first["emoji"] == "🚀"
    pairs = {(d["color_from"], d["color_to"]) for d in map(detect_defaults, [f"app{i}" for i in range(20)])}
    assert len(pairs) > 3 and all(a != b for a, b in pairs)


def test_appspec_is_frozen(tmp_path: Path) -> None:
    spec: AppSpec = load(make_app(tmp_path, "sdk: gradio\n"))
    with pytest.raises(AttributeError):
        spec.sdk = "streamlit"  # type: ignore[misc]


def test_readme_linked_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.md"
    outside.write_text("---\nsdk: gradio\n---\n")
    folder = make_app(tmp_path, None)
    (folder / "README.md").symlink_to(outside)
    with pytest.raises(SpecError, match=r"^README\.md: is a link to a file outside the app folder"):
        load(folder)


def test_requirements_that_are_not_utf8_say_so(tmp_path: Path) -> None:
    folder = make_app(tmp_path, "sdk: gradio\n")
    (folder / "requirements.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(SpecError, match=r"^requirements\.txt: is not UTF-8 text"):
        load(folder)
