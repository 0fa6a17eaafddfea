"""What one training run produced, epoch by epoch: the value train(S) returns.

    history = train(S)
    history.to_frame()        # DataFrame with METRIC_COLUMNS, one row per epoch
    history.summary()         # the dict written to summary.json

Its own module so that the loop (which fills it) and the run store (which reads run folders into
the same columns) depend on it and not on each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"]


@dataclass
class History:
    records: list[dict] = field(default_factory=list)
    state: str = "running"              # finished, stopped, failed or diverged once train() returns
    error: str | None = None
    test_loss: float | None = None
    test_acc: float | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None
    early_stopped: bool = False
    engine: str = ""                    # 'cuda-graph' or 'eager (reason)'

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records, columns=METRIC_COLUMNS)

    def summary(self) -> dict:
        last = self.records[-1] if self.records else {}
        return {"state": self.state, "test_loss": self.test_loss, "test_acc": self.test_acc,
                "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "final_train_loss": last.get("train_loss"), "final_val_loss": last.get("val_loss"),
                "final_val_acc": last.get("val_acc"), "epochs_run": len(self.records),
                "early_stopped": self.early_stopped, "engine": self.engine,
                "seconds": sum(r["seconds"] for r in self.records)}
