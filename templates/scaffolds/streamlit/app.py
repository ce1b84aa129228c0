import numpy as np
import pandas as pd
import streamlit as st

st.set_page_config(page_title="{{ title }}", page_icon="📊")
st.title("{{ title }}")

name = st.text_input("Your name", "World")
st.write(f"Hello, {name}!")

points = st.slider("Number of points", 10, 200, 50)
rng = np.random.default_rng(0)
data = pd.DataFrame(rng.standard_normal((points, 2)).cumsum(axis=0), columns=["a", "b"])
st.line_chart(data)
st.caption(f"{points} points of a random walk")
