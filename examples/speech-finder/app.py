"""Find speech in an uploaded audio file with Silero VAD, served by the platform's model runner."""

from __future__ import annotations

import gradio as gr

from spaces_runtime.client import pipeline

vad = pipeline("voice-activity-detection")


def find_speech(path: str | None, threshold: float = 0.5) -> tuple[str, list[list[float]]]:
    if not path:
        return "Upload a WAV file first.", []
    with open(path, "rb") as f:
        result = vad(f.read(), threshold=threshold)
    rows = [[round(s["start"], 2), round(s["end"], 2), round(s["end"] - s["start"], 2)]
            for s in result["segments"]]
    summary = (f"{len(rows)} speech segment(s), {result['speech_s']:.1f} s of speech "
               f"in {result['duration_s']:.1f} s of audio")
    return summary, rows


with gr.Blocks(title="Speech Finder") as demo:
    gr.Markdown("# 🗣️ Speech Finder\nWhere does someone speak? (Silero VAD on the model runner)")
    audio = gr.Audio(type="filepath", label="Audio file (WAV, FLAC, OGG)")
    threshold = gr.Slider(0.1, 0.9, value=0.5, step=0.05, label="Speech threshold")
    summary = gr.Textbox(label="Summary")
    table = gr.Dataframe(headers=["start (s)", "end (s)", "length (s)"], label="Segments")
    gr.Button("Find speech").click(find_speech, [audio, threshold], [summary, table], api_name="find")

if __name__ == "__main__":
    demo.launch()
