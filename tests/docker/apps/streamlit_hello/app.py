import streamlit as st

st.title("Hello from a container")
st.write("1 + 1 =", 1 + 1)
