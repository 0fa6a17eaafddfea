"""The app shell's hand-off to the pages, importing nothing but streamlit.

    from dashboard.shell import run_through_app
    run_through_app()          # the first statement of every page, before any heavy import

Why a page must call it first: with a pages/ folder next to navigation.py, Streamlit starts in its old
folder mode (PagesManager.uses_pages_directory) and keeps it until navigation.py's st.navigation turns it
off. A fresh server whose very first request is a page's own address (/compare) therefore runs that
page alone, under Streamlit's automatic "app, compare, live..." navigation, without navigation.py's
sidebar. Turning the mode off and rerunning makes that rerun go through navigation.py to the same page.
It must happen before the page imports torch and the engine (seconds on a cold server), or the
automatic navigation stays on screen all that time.
"""
from __future__ import annotations

import streamlit as st

SHELL_RAN = "app_shell_ran"             # set by navigation.py: this session has run the navigation


def run_through_app() -> None:
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory and not st.session_state.get(SHELL_RAN):
        PagesManager.uses_pages_directory = False
        st.rerun()
