"""Data Explorer: a generated signal you can shape with sliders, and summary statistics for any CSV you upload."""

import io

import numpy as np
import pandas as pd
import streamlit as st

SEED = 42  # fixed, so the same settings always draw the same chart


def make_signal(points: int, frequency: float, noise: float, window: int) -> pd.DataFrame:
    """A noisy sine wave over one unit of time, with its moving average."""
    rng = np.random.default_rng(SEED)
    t = np.linspace(0.0, 1.0, points)
    signal = np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(points)
    frame = pd.DataFrame({"t": t, "signal": signal}).set_index("t")
    frame["moving average"] = frame["signal"].rolling(window, min_periods=1, center=True).mean()
    return frame


def histogram(values: pd.Series, bins: int = 20) -> pd.DataFrame:
    counts, edges = np.histogram(values, bins=bins)
    # numeric bin centres, so the chart orders bins by value rather than as text
    centres = np.round((edges[:-1] + edges[1:]) / 2, 2)
    return pd.DataFrame({"value": centres, "count": counts}).set_index("value")


def sample_csv() -> bytes:
    """A small sales table, offered as a download so there is always something to upload."""
    rng = np.random.default_rng(SEED)
    months = pd.date_range("2024-01-01", periods=12, freq="MS").strftime("%Y-%m")
    frame = pd.DataFrame(
        {
            "month": months,
            "visitors": rng.integers(800, 1600, 12),
            "signups": rng.integers(40, 120, 12),
            "revenue": np.round(rng.uniform(2000, 6000, 12), 2),
        }
    )
    return frame.to_csv(index=False).encode()


def read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data))


def signal_section() -> None:
    st.header("Signal generator")
    left, right = st.columns([1, 3])
    with left:
        points = st.slider("Number of points", 10, 500, 100, step=10)
        frequency = st.slider("Frequency (cycles)", 1, 10, 2)
        noise = st.slider("Noise level", 0.0, 1.0, 0.2, step=0.05)
        window = st.slider("Smoothing window", 1, 25, 5)
    frame = make_signal(points, frequency, noise, window)
    with right:
        st.line_chart(frame, height=320)
    st.markdown(f"Points plotted: **{points}**")
    cols = st.columns(4)
    cols[0].metric("Mean", f"{frame['signal'].mean():.3f}")
    cols[1].metric("Std dev", f"{frame['signal'].std():.3f}")
    cols[2].metric("Min", f"{frame['signal'].min():.3f}")
    cols[3].metric("Max", f"{frame['signal'].max():.3f}")
    st.subheader("Distribution")
    st.bar_chart(histogram(frame["signal"]), height=220)


def upload_section() -> None:
    st.header("Your data")
    st.download_button("Download a sample CSV", sample_csv(), file_name="sample.csv", mime="text/csv")
    uploaded = st.file_uploader("Upload a CSV file", type=["csv"])
    if uploaded is None:
        st.info("No file yet: upload a CSV to see its table, summary statistics and a chart.")
        return
    try:
        frame = read_csv(uploaded.getvalue())
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        st.error(f"Could not read {uploaded.name} as CSV: {exc}")
        return
    rows, columns = frame.shape
    st.success(f"Loaded {uploaded.name}: {rows} rows, {columns} columns")
    st.dataframe(frame, width="stretch")
    numeric = frame.select_dtypes("number")
    if numeric.empty:
        st.warning("No numeric columns to summarise.")
        return
    st.subheader("Summary statistics")
    st.dataframe(numeric.describe().round(3), width="stretch")
    st.bar_chart(numeric, height=280)


st.set_page_config(page_title="Data Explorer", page_icon="📈", layout="wide")
st.title("📈 Data Explorer")
st.caption("Shape a signal with the sliders, or upload a CSV for a quick look at its numbers.")
signal_section()
st.divider()
upload_section()
