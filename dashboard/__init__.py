"""The dashboard's helpers: pure functions from run data to tables and Plotly figures (figures.py,
tables.py), presets and form logic (presets.py, forms.py), and the one streamlit-aware module
that holds the process-wide runner (state.py). Pages import from here and from trainlib."""
