"""trainlib: the training engine behind the dashboard. No streamlit, no plotly.

    from trainlib import ScenarioSpec, create_scenario, train
    S = create_scenario(dataset="shapes", epochs=3, dropout=0.2)
    history = train(S)
    print(history.test_acc)
"""
from .callbacks import Callback, OnEpoch, StopWhen
from .data import DatasetUnavailable, load_data
from .history import History
from .loop import evaluate, fit, train
from .runner import Runner
from .scenario import Scenario, create_scenario
from .spec import ScenarioSpec, SpecError
from .store import RunStore, list_runs, load_run
from .sweep import grid, variants

__all__ = ["Callback", "DatasetUnavailable", "History", "OnEpoch", "StopWhen", "Runner", "RunStore", "Scenario", "ScenarioSpec", "SpecError",
           "create_scenario", "evaluate", "fit", "grid", "list_runs", "load_data", "load_run", "train", "variants"]
