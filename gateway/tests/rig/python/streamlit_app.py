"""A Streamlit app that knows nothing of meinGPT: it shows the user the
gateway names in its identity headers and counts button clicks (each click
is a round trip over Streamlit's WebSocket)."""

from urllib.parse import unquote

import streamlit as st

headers = st.context.headers
user = headers.get("X-Auth-Request-User", "nobody")
name = unquote(headers.get("X-Auth-Request-Preferred-Username", ""))

st.title("Team notes")
st.write(f"Signed in as {name} ({user})")

if "clicks" not in st.session_state:
    st.session_state.clicks = 0
if st.button("Count"):
    st.session_state.clicks += 1
st.write(f"Clicks: {st.session_state.clicks}")
