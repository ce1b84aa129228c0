"""Audio Lab: measure a sound file (duration, rate, loudness, peak), change its gain or reverse it,
and synthesise test tones. Plain numpy + soundfile, so every number is reproducible."""

import math
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import soundfile as sf

HERE = Path(__file__).parent
SILENCE_DBFS = -120.0  # floor for log levels, so silence gives a number JSON can carry (not -inf)
WAVEFORMS = ["sine", "square", "triangle", "sawtooth"]


def dbfs(level: float) -> float:
    """Level relative to digital full scale (1.0), in decibels, rounded for display."""
    return round(max(20 * math.log10(level), SILENCE_DBFS), 2) if level > 0 else SILENCE_DBFS


def measure(data: np.ndarray, sample_rate: int) -> dict:
    """Stats of float samples shaped (frames, channels)."""
    frames, channels = data.shape
    rms = float(np.sqrt(np.mean(np.square(data)))) if data.size else 0.0
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    return {
        "duration_s": round(frames / sample_rate, 3),
        "sample_rate": sample_rate,
        "channels": channels,
        "frames": frames,
        "rms": round(rms, 4),
        "rms_dbfs": dbfs(rms),
        "peak": round(peak, 4),
        "peak_dbfs": dbfs(peak),
    }


def write_wav(data: np.ndarray, sample_rate: int) -> str:
    # 16-bit PCM plays in every browser; clip first so loud gains saturate instead of wrapping around
    with tempfile.NamedTemporaryFile(suffix=".wav", delete=False) as out:
        sf.write(out.name, np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16")
        return out.name


def analyze_audio(path: str, gain_db: float = 0.0, reverse: bool = False) -> tuple[dict, str]:
    """Stats of the uploaded file, and a WAV of it with the gain applied (and reversed if asked)."""
    if not path:
        raise gr.Error("Upload or record some audio first.")
    try:
        data, sample_rate = sf.read(path, dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise gr.Error(f"Could not read the audio file ({exc}); try a WAV, FLAC or OGG file.") from None
    processed = data * (10 ** (gain_db / 20))
    if reverse:
        processed = processed[::-1]
    stats = measure(data, sample_rate)
    out = measure(np.clip(processed, -1.0, 1.0), sample_rate)
    stats |= {"output_rms_dbfs": out["rms_dbfs"], "output_peak_dbfs": out["peak_dbfs"]}
    stats["clipped"] = bool(np.any(np.abs(processed) > 1.0))
    return stats, write_wav(processed, sample_rate)


def synthesize(waveform: str, frequency: float, duration: float, amplitude: float, rate: int) -> np.ndarray:
    t = np.arange(round(duration * rate)) / rate
    phase = (t * frequency) % 1.0
    shapes = {
        "sine": np.sin(2 * np.pi * phase),
        "square": np.where(phase < 0.5, 1.0, -1.0),
        "triangle": 1 - 4 * np.abs(phase - 0.5),
        "sawtooth": 2 * phase - 1,
    }
    return amplitude * shapes[waveform]


def make_tone(
    waveform: str = "sine",
    frequency: float = 440.0,
    duration: float = 1.0,
    amplitude: float = 0.5,
    sample_rate: str = "16000",
) -> tuple[dict, str]:
    """A test tone as a mono 16-bit WAV, with the stats of what was written."""
    if waveform not in WAVEFORMS:
        raise gr.Error(f"Unknown waveform '{waveform}'; choose one of {', '.join(WAVEFORMS)}.")
    rate = int(sample_rate)
    samples = synthesize(waveform, frequency, duration, amplitude, rate)
    path = write_wav(samples, rate)
    written, _ = sf.read(path, dtype="float64", always_2d=True)
    return measure(written, rate), path


with gr.Blocks(title="Audio Lab") as demo:
    gr.Markdown(
        "# 🎧 Audio Lab\n"
        "Measure any sound file — duration, sample rate, channels, RMS loudness and peak level in dBFS — "
        "change its gain or play it backwards, or generate a clean test tone."
    )
    with gr.Tab("Analyze"):
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(type="filepath", label="Audio file", sources=["upload", "microphone"])
                gain = gr.Slider(-24, 24, value=0, step=1, label="Gain (dB)")
                reverse = gr.Checkbox(label="Reverse", value=False)
                analyze_btn = gr.Button("Analyze", variant="primary")
            with gr.Column():
                stats_out = gr.JSON(label="Measurements")
                audio_out = gr.Audio(type="filepath", format="wav", label="Processed audio")
        gr.Examples(
            [[str(HERE / "examples" / "chord.wav"), 0, False], [str(HERE / "examples" / "chord.wav"), 6, True]],
            inputs=[audio_in, gain, reverse],
        )
        analyze_btn.click(
            analyze_audio, [audio_in, gain, reverse], [stats_out, audio_out], api_name="analyze_audio"
        )
    with gr.Tab("Tone generator"):
        with gr.Row():
            with gr.Column():
                waveform = gr.Radio(WAVEFORMS, value="sine", label="Waveform")
                frequency = gr.Slider(20, 4000, value=440, step=1, label="Frequency (Hz)")
                duration = gr.Slider(0.1, 5, value=1, step=0.1, label="Duration (s)")
                amplitude = gr.Slider(0.01, 1, value=0.5, step=0.01, label="Amplitude")
                rate = gr.Dropdown(["8000", "16000", "22050", "44100", "48000"], value="16000", label="Sample rate")
                tone_btn = gr.Button("Generate", variant="primary")
            with gr.Column():
                tone_stats = gr.JSON(label="Measurements")
                tone_out = gr.Audio(type="filepath", format="wav", label="Tone")
        gr.Examples(
            [["sine", 440, 1, 0.5, "16000"], ["square", 220, 0.5, 0.25, "22050"], ["sawtooth", 110, 2, 0.3, "44100"]],
            inputs=[waveform, frequency, duration, amplitude, rate],
        )
        tone_btn.click(
            make_tone, [waveform, frequency, duration, amplitude, rate], [tone_stats, tone_out], api_name="tone"
        )

if __name__ == "__main__":
    demo.launch(theme=gr.themes.Soft())
