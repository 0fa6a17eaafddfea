"""User-supplied text (run and sweep names, error messages) shown inside Markdown, as text.

    st.markdown(f"**{plain(row['name'])}**")      # a name like '![x](http://host/p.png)' stays text

A name is data typed by anyone who can open the dashboard (or write a scenario.json); rendered as
Markdown, an image in it would make every viewer's browser fetch that address. Streamlit already
escapes HTML; this escapes the Markdown syntax as well (CommonMark backslash escapes).
"""
from __future__ import annotations

import re

# The characters that open Markdown (and Streamlit's LaTeX '$' and ':material/icon:' colons) syntax;
# CommonMark lets a backslash escape each of them.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def plain(text: object) -> str:
    """`text` with every Markdown (and LaTeX '$') metacharacter escaped, and line breaks as spaces."""
    flat = " ".join(str(text).split())
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", flat)
