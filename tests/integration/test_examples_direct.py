"""The example apps and the `spaces init` scaffolds on their own, run the way Hugging Face runs a Space:
a fresh virtualenv with the pinned SDK plus the app's requirements.txt, then `python app.py` (Gradio) or
`streamlit run app.py`, called with gradio_client or driven with Streamlit's AppTest. No platform in between:
when these pass and a platform test fails, the fault is in the platform."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import textwrap
import wave
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from gradio_client import Client, handle_file
from PIL import Image
from polling import wait_answering
from prerequisites import missing

from spaces_harness import EXAMPLES, free_port

GRADIO = "gradio==6.31.0"
STREAMLIT = "streamlit==1.67.0"
GRADIO_EXAMPLES = ("sentiment", "image-filters", "audio-lab")
STREAMLIT_EXAMPLES = ("data-explorer",)
HF_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}




def _build_venv(folder: Path, packages: list[str]) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        missing("uv is not on PATH; install it with `pip install uv`")
    env = {**os.environ, "VIRTUAL_ENV": str(folder)}
    for step in ([uv, "venv", "-q", "-p", "3.11", str(folder)], [uv, "pip", "install", "-q", *packages]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            missing(f"{' '.join(step[:3])} failed: {done.stderr[-2000:]}")
    return folder


@pytest.fixture(scope="session")
def gradio_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One virtualenv for every Gradio example: the pinned SDK plus each example's requirements.txt."""
    requirements = [arg for name in GRADIO_EXAMPLES for arg in ("-r", str(EXAMPLES / name / "requirements.txt"))]
    return _build_venv(tmp_path_factory.mktemp("venv") / "gradio", [GRADIO, *requirements])


@pytest.fixture(scope="session")
def streamlit_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    requirements = [arg for name in STREAMLIT_EXAMPLES for arg in ("-r", str(EXAMPLES / name / "requirements.txt"))]
    return _build_venv(tmp_path_factory.mktemp("venv") / "streamlit", [STREAMLIT, *requirements])


@contextmanager
def _serve(argv: list[str], cwd: Path, env: dict[str, str], ready_url: str) -> Iterator[None]:
    """Run an app process while the block runs; stop only the process group started here."""
    log = cwd.parent / f"{cwd.name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_answering(process, ready_url, log)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def _copy(source: Path, dest_root: Path) -> Path:
    """A copy of the app folder: proves it is self-contained, and the app cannot litter the repository."""
    dest = dest_root / source.name
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", ".gradio", ".venv"))
    return dest


@contextmanager
def _gradio(folder: Path, venv: Path) -> Iterator[Client]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {"GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    with _serve([str(venv / "bin" / "python"), "app.py"], folder, env, url + "config"):
        yield Client(url, verbose=False)


GradioApp = Callable[[Path], Client]


@pytest.fixture(scope="module")
def gradio_app(gradio_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GradioApp]:
    """gradio_app(folder) starts a copy of that app once per module and gives a Client for it."""
    clients: dict[Path, Client] = {}
    with ExitStack() as stack:

        def start(source: Path) -> Client:
            if source not in clients:
                folder = _copy(source, tmp_path_factory.mktemp("apps"))
                clients[source] = stack.enter_context(_gradio(folder, gradio_venv))
            return clients[source]

        yield start


# --- every example is a valid Hugging Face Space folder -------------------------------------------------


def _front_matter(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{folder.name}/README.md must open with YAML front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.mark.parametrize("name", GRADIO_EXAMPLES + STREAMLIT_EXAMPLES)
def test_example_folder_is_a_deployable_space(name: str) -> None:
    folder = EXAMPLES / name
    meta = _front_matter(folder)
    sdk, version = (("gradio", "6.31.0") if name in GRADIO_EXAMPLES else ("streamlit", "1.67.0"))
    assert (meta["sdk"], str(meta["sdk_version"])) == (sdk, version)
    assert (folder / meta["app_file"]).is_file()
    assert {meta["colorFrom"], meta["colorTo"]} <= HF_COLORS
    assert meta["title"] and meta["emoji"] and meta["license"] and meta["tags"]
    assert len(meta["short_description"]) <= 60  # Hugging Face rejects longer ones
    lines = (folder / "requirements.txt").read_text().lower().splitlines()
    packages = {re.split(r"[<>=!~\[; ]", line.strip())[0] for line in lines if line.strip()[:1].isalnum()}
    assert not packages & {"torch", "gradio", "streamlit"}, f"{name}: the SDK pins these, no model libraries"


def test_exactly_one_core_example_is_pinned() -> None:
    pinned = [name for name in GRADIO_EXAMPLES + STREAMLIT_EXAMPLES if _front_matter(EXAMPLES / name).get("pinned")]
    assert pinned == ["sentiment"]


# --- sentiment: /analyze ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentiment(gradio_app: GradioApp) -> Client:
    return gradio_app(EXAMPLES / "sentiment")


@pytest.mark.slow
def test_sentiment_reads_a_positive_review(sentiment: Client) -> None:
    label, stats, highlighted = sentiment.predict("I love this great demo", api_name="/analyze")
    assert label["label"] == "positive"
    assert stats == {"sentiment": "positive", "score": 3.0, "characters": 22, "words": 5, "sentences": 1,
                     "avg_word_length": 3.6, "reading_time_seconds": 2,
                     "top_words": [["love", 1], ["great", 1], ["demo", 1]]}
    marked = {span["token"]: span["class_or_confidence"] for span in highlighted}
    assert marked["love"] == marked["great"] == "positive"


@pytest.mark.slow
def test_sentiment_handles_negation_and_neutral_text(sentiment: Client) -> None:
    _, negative, _ = sentiment.predict("The build was slow and the logs were confusing. Not good.", 5,
                                       api_name="/analyze")
    assert (negative["sentiment"], negative["score"], negative["sentences"]) == ("negative", -3.0, 2)
    label, neutral, _ = sentiment.predict("The meeting is at 10am in room 4.", 1, api_name="/analyze")
    assert label["label"] == neutral["sentiment"] == "neutral"
    assert neutral["top_words"] == [["meeting", 1]]  # the second input caps the list


# --- image-filters: /apply_filter ------------------------------------------------------------------------

FILTERS = ("Grayscale", "Blur", "Sharpen", "Edges", "Posterize", "Sepia", "Pixelate", "Invert")


@pytest.fixture(scope="module")
def image_filters(gradio_app: GradioApp) -> Client:
    return gradio_app(EXAMPLES / "image-filters")


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A colourful 96x64 picture with hard edges, so every filter visibly changes it."""
    x, y = np.meshgrid(np.linspace(0, 255, 96), np.linspace(0, 255, 64))
    pixels = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
    pixels[20:44, 30:60] = (250, 240, 30)
    path = tmp_path_factory.mktemp("images") / "photo.png"
    Image.fromarray(pixels, "RGB").save(path)
    return path


@pytest.mark.slow
def test_grayscale_returns_a_gray_png_of_the_same_size(image_filters: Client, photo: Path) -> None:
    result = image_filters.predict(handle_file(str(photo)), "Grayscale", 10, api_name="/apply_filter")
    out = Image.open(result)
    assert (out.format, out.size) == ("PNG", (96, 64))
    rgb = np.asarray(out.convert("RGB")).astype(int)
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    original = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    assert np.abs(rgb - original).mean() > 20


@pytest.mark.slow
def test_every_filter_changes_the_image(image_filters: Client, photo: Path) -> None:
    original = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    for name in FILTERS:
        result = image_filters.predict(handle_file(str(photo)), name, 5, api_name="/apply_filter")
        out = np.asarray(Image.open(result).convert("RGB")).astype(int)
        assert out.shape == original.shape, name
        assert np.abs(out - original).mean() > 1, f"{name} left the image unchanged"


@pytest.mark.slow
def test_defaults_apply_grayscale(image_filters: Client, photo: Path) -> None:
    result = image_filters.predict(handle_file(str(photo)), api_name="/apply_filter")
    assert Image.open(result).convert("RGB").getextrema()[0] == Image.open(result).convert("L").getextrema()


# --- audio-lab: /analyze_audio and /tone -----------------------------------------------------------------


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM through the standard library, independent of the soundfile the app uses."""
    frames = samples if samples.ndim == 2 else samples[:, None]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(frames.shape[1])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.round(frames * 32767).astype("<i2").tobytes())
    return path


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path, "rb") as wav:
        assert wav.getsampwidth() == 2
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return data.reshape(-1, wav.getnchannels()) / 32767, wav.getframerate()


@pytest.fixture(scope="module")
def audio_lab(gradio_app: GradioApp) -> Client:
    return gradio_app(EXAMPLES / "audio-lab")


@pytest.fixture(scope="module")
def stereo_sine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.75 s of a 300 Hz sine at amplitude 0.25 in both channels of a 22.05 kHz file."""
    t = np.arange(int(0.75 * 22050)) / 22050
    sine = 0.25 * np.sin(2 * np.pi * 300 * t)
    return _write_wav(tmp_path_factory.mktemp("audio") / "sine.wav", np.stack([sine, sine], axis=1), 22050)


@pytest.mark.slow
def test_audio_stats_match_the_uploaded_wav(audio_lab: Client, stereo_sine: Path) -> None:
    stats, _ = audio_lab.predict(handle_file(str(stereo_sine)), api_name="/analyze_audio")
    assert (stats["duration_s"], stats["sample_rate"], stats["channels"], stats["frames"]) == (0.75, 22050, 2, 16537)
    assert stats["peak_dbfs"] == pytest.approx(20 * math.log10(0.25), abs=0.05)  # -12.04
    assert stats["rms_dbfs"] == pytest.approx(20 * math.log10(0.25 / math.sqrt(2)), abs=0.05)  # -15.05
    assert stats["clipped"] is False


@pytest.mark.slow
def test_gain_and_reverse_come_back_as_a_wav(audio_lab: Client, stereo_sine: Path) -> None:
    stats, path = audio_lab.predict(handle_file(str(stereo_sine)), 6, True, api_name="/analyze_audio")
    original, _ = _read_wav(str(stereo_sine))
    processed, rate = _read_wav(path)
    assert rate == 22050 and processed.shape == original.shape
    np.testing.assert_allclose(processed, original[::-1] * 10 ** (6 / 20), atol=2e-4)
    assert stats["output_peak_dbfs"] == pytest.approx(stats["peak_dbfs"] + 6, abs=0.05)


@pytest.mark.slow
def test_loud_gain_clips_instead_of_wrapping(audio_lab: Client, stereo_sine: Path) -> None:
    stats, path = audio_lab.predict(handle_file(str(stereo_sine)), 24, False, api_name="/analyze_audio")
    processed, _ = _read_wav(path)
    assert stats["clipped"] is True and stats["output_peak_dbfs"] == pytest.approx(0, abs=0.01)
    assert processed.max() > 0.99 and processed.min() < -0.99


@pytest.mark.slow
def test_tone_generator_writes_the_tone_it_reports(audio_lab: Client) -> None:
    stats, path = audio_lab.predict("square", 1000, 0.5, 0.25, "8000", api_name="/tone")
    samples, rate = _read_wav(path)
    assert (rate, samples.shape) == (8000, (4000, 1))
    assert (stats["duration_s"], stats["frames"], stats["sample_rate"]) == (0.5, 4000, 8000)
    assert stats["peak_dbfs"] == stats["rms_dbfs"] == pytest.approx(-12.04, abs=0.01)  # a square wave's RMS is its peak
    sine_stats, _ = audio_lab.predict(api_name="/tone")  # defaults: 440 Hz sine, 1 s, amplitude 0.5, 16 kHz
    assert (sine_stats["peak_dbfs"], sine_stats["rms_dbfs"], sine_stats["frames"]) == (-6.02, -9.03, 16000)


# --- data-explorer: streamlit run, and the script driven by AppTest --------------------------------------

APPTEST_SCRIPT = textwrap.dedent("""
    import json, sys
    from streamlit.testing.v1 import AppTest

    def page(at):
        return {"exceptions": [e.value for e in at.exception], "markdown": [m.value for m in at.markdown],
                "metrics": {m.label: m.value for m in at.metric}, "success": [s.value for s in at.success],
                "errors": [e.value for e in at.error], "info": [i.value for i in at.info],
                "tables": [t.value.to_dict() for t in at.dataframe]}

    at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
    pages = {"first": page(at), "title": at.title[0].value}
    next(s for s in at.slider if s.label == "Number of points").set_value(250).run()
    pages["more_points"] = page(at)
    at.file_uploader[0].upload("sales.csv", sys.argv[2].encode(), "text/csv").run()
    pages["uploaded"] = page(at)
    at.file_uploader[0].set_value(("broken.csv", bytes([0xFF, 0xFE, 0x00]), "text/csv")).run()
    pages["broken"] = page(at)
    print(json.dumps(pages, default=str))
""")


@pytest.fixture(scope="module")
def data_explorer(streamlit_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = _copy(EXAMPLES / "data-explorer", tmp_path_factory.mktemp("apps"))
    port = free_port()
    argv = [str(streamlit_venv / "bin" / "streamlit"), "run", "app.py", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    url = f"http://127.0.0.1:{port}"
    with _serve(argv, folder, {"PYTHONUNBUFFERED": "1"}, f"{url}/_stcore/health"):
        yield url, folder


@pytest.mark.slow
def test_streamlit_example_serves_health_and_page(data_explorer: tuple[str, Path]) -> None:
    url, _ = data_explorer
    assert httpx.get(f"{url}/_stcore/health").text == "ok"
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and '<div id="root"' in page.text


@pytest.mark.slow
def test_streamlit_example_reacts_to_slider_and_upload(data_explorer: tuple[str, Path], streamlit_venv: Path) -> None:
    _, folder = data_explorer
    script = folder.parent / "drive_app.py"
    script.write_text(APPTEST_SCRIPT)
    csv = "month,visitors,revenue,region\n2024-01,100,10.5,north\n2024-02,300,20.5,south\n2024-03,200,30.5,east\n"
    done = subprocess.run([str(streamlit_venv / "bin" / "python"), str(script), str(folder / "app.py"), csv],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    pages = json.loads(done.stdout.strip().splitlines()[-1])
    assert pages["title"] == "📈 Data Explorer"
    first, more = pages["first"], pages["more_points"]
    assert first["exceptions"] == [] and "Points plotted: **100**" in first["markdown"]
    assert "Points plotted: **250**" in more["markdown"] and more["metrics"] != first["metrics"]
    assert first["info"] and first["tables"] == []  # before an upload: a hint, no table
    uploaded = pages["uploaded"]
    assert uploaded["exceptions"] == [] and uploaded["success"] == ["Loaded sales.csv: 3 rows, 4 columns"]
    summary = uploaded["tables"][1]
    assert summary["visitors"]["mean"] == 200.0 and summary["revenue"]["max"] == 30.5
    assert "region" not in summary  # text columns are shown in the table but not summarised
    assert pages["broken"]["errors"][0].startswith("Could not read broken.csv as CSV")


# --- the `spaces init` scaffolds render into apps that run -----------------------------------------------


def _scaffold(sdk: str, root: Path) -> Path:
    from spaces_runtime.cli.scaffold import scaffold
    from spaces_runtime.config import Settings

    folder = root / f"my-{sdk}-app"
    scaffold(folder, sdk, Settings())
    return folder


@pytest.mark.parametrize("sdk", ["gradio", "streamlit", "docker", "static"])
def test_scaffold_renders_a_space_with_the_folder_title(sdk: str, tmp_path: Path) -> None:
    folder = _scaffold(sdk, tmp_path)
    meta = _front_matter(folder)
    assert (meta["title"], meta["sdk"]) == (f"My {sdk.title()} App", sdk)
    assert (folder / meta.get("app_file", "Dockerfile")).is_file()
    assert {"gradio": "6.31.0", "streamlit": "1.67.0"}.get(sdk) == (str(meta["sdk_version"]) if "sdk_version" in
                                                                      meta else None)
    for path in folder.rglob("*"):
        assert "{{" not in path.read_text() and "{%" not in path.read_text(), f"{path.name} left a placeholder"


def test_docker_scaffold_follows_hugging_face_conventions(tmp_path: Path) -> None:
    folder = _scaffold("docker", tmp_path)
    dockerfile = (folder / "Dockerfile").read_text()
    assert _front_matter(folder)["app_port"] == 7860
    assert "useradd --create-home --uid 1000 user" in dockerfile and "\nUSER user\n" in dockerfile
    assert '"--port", "7860"' in dockerfile and "EXPOSE 7860" in dockerfile


@pytest.mark.slow
def test_gradio_scaffold_answers_greet(gradio_app: GradioApp, tmp_path_factory: pytest.TempPathFactory) -> None:
    client = gradio_app(_scaffold("gradio", tmp_path_factory.mktemp("init")))
    assert client.predict("World", 3, api_name="/greet") == "Hello, World!!!"
    assert client.predict("Ada", api_name="/greet") == "Hello, Ada!"


@pytest.mark.slow
def test_docker_scaffold_app_serves_its_api(gradio_venv: Path, tmp_path: Path) -> None:
    # the image itself needs a Docker Engine (tests/docker/); here the app inside it, with the same command
    folder = _scaffold("docker", tmp_path)
    port = free_port()
    argv = [str(gradio_venv / "bin" / "uvicorn"), "app:app", "--host", "127.0.0.1", "--port", str(port)]
    with _serve(argv, folder, {}, f"http://127.0.0.1:{port}/health"):
        assert httpx.get(f"http://127.0.0.1:{port}/api/hello", params={"name": "Ada"}).json() == {
            "message": "Hello, Ada!"}
        assert "<h1>My Docker App</h1>" in httpx.get(f"http://127.0.0.1:{port}/").text


@pytest.mark.slow
def test_streamlit_scaffold_runs_and_reacts(streamlit_venv: Path, tmp_path: Path) -> None:
    folder = _scaffold("streamlit", tmp_path)
    script = textwrap.dedent("""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
        assert not at.exception, at.exception
        at.slider[0].set_value(120).run()
        at.text_input[0].set_value("Ada").run()
        print(at.title[0].value, "|", at.caption[0].value, "|", at.markdown[0].value)
    """)
    done = subprocess.run([str(streamlit_venv / "bin" / "python"), "-c", script, str(folder / "app.py")],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "My Streamlit App | 120 points of a random walk | Hello, Ada!"
