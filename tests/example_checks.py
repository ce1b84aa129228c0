"""What a user checks of each core example, given its link — shared by the process and docker backend tests."""

from __future__ import annotations

import math
import struct
import time
import wave
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

CORE_EXAMPLES = ("sentiment", "image-filters", "audio-lab", "data-explorer")


def check_sentiment(url: str) -> None:
    label, stats, _ = Client(url, verbose=False).predict("I love this wonderful, great product!", 5,
                                                          api_name="/analyze")
    assert label["label"].lower().startswith("pos")
    assert stats["words"] == 6


def check_image_filters(url: str, tmp_path: Path) -> None:
    source = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(source)
    result = Client(url, verbose=False).predict(handle_file(str(source)), "Grayscale", 10, api_name="/apply_filter")
    out = Image.open(result)
    assert out.size == (64, 48)
    r, g, b = out.convert("RGB").getpixel((10, 10))
    assert r == g == b  # grayscale really applied


def check_audio_lab(url: str, tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    rate, seconds = 16000, 0.5
    frames = b"".join(struct.pack("<h", int(16000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    stats, processed = Client(url, verbose=False).predict(handle_file(str(path)), 0, False,
                                                          api_name="/analyze_audio")
    assert stats["sample_rate"] == rate
    assert abs(stats["duration_s"] - seconds) < 0.01
    assert Path(processed).stat().st_size > 1000


def streamlit_script_run(url: str, timeout: float = 60) -> tuple[set[str], bytes]:
    """Open the Streamlit app's WebSocket as a browser does, ask for a script run, and collect what comes back
    until the run finishes: the kinds of message, and every message's bytes (to look for rendered text)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://") + "_stcore/stream"
    kinds: set[str] = set()
    seen = b""
    with connect(ws_url, subprotocols=["streamlit"], open_timeout=10) as ws:  # type: ignore[list-item]
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        ws.send(msg.SerializeToString())
        deadline = time.monotonic() + timeout
        while "script_finished" not in kinds and time.monotonic() < deadline:
            raw = ws.recv(timeout=timeout)
            forward = ForwardMsg()
            forward.ParseFromString(raw)
            kinds.add(str(forward.WhichOneof("type")))
            seen += raw if isinstance(raw, bytes) else raw.encode()
    return kinds, seen


def voiced_clip(path: Path, rate: int = 16000) -> np.ndarray:
    """Three seconds: silence, a second of a synthetic voice (harmonics, vibrato, syllable rhythm), silence.
    Written to ``path`` as a float WAV; returns the samples."""
    import soundfile

    rng = np.random.default_rng(0)
    t = np.arange(rate) / rate
    voiced = sum(np.sin(2 * np.pi * f * t * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / k
                 for k, f in enumerate([140, 280, 420, 560, 700, 840], 1))
    voiced = voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2) + rng.normal(0, 0.02, rate)
    audio = np.concatenate([np.zeros(rate), 0.3 * voiced, np.zeros(rate)]).astype(np.float32)
    soundfile.write(path, audio, rate, subtype="FLOAT")
    return audio


def check_streamlit_script_runs(url: str) -> None:
    kinds, rendered = streamlit_script_run(url)
    assert {"new_session", "delta", "script_finished"} <= kinds
    assert b"Traceback" not in rendered
