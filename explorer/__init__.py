"""The catalogue explorer: a small Streamlit app over the read API (it never touches a store)."""
