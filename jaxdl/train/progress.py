"""The progress bar over epochs that the command line and `fit(..., progress=True)` show (stderr)."""

from __future__ import annotations

import math
import sys


class Progress:
    """A bar over epochs with the latest loss, accuracy and epoch time (stderr)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True):
        from tqdm.auto import tqdm  # noqa: PLC0415

        self.bar = tqdm(total=total, initial=initial, unit="epoch", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, leave=True)

    def update(self, record: dict) -> None:
        if "members" in record:  # a stack (sweep): its member with the lowest validation loss
            record = {**min(record["members"], key=lowest_val_loss), "seconds": record["seconds"]}
        shown = {"loss": record.get("train_loss"), "val_loss": record.get("val_loss")}
        for key in ("train_accuracy", "val_accuracy", "val_mse"):
            if key in record:
                shown[key.replace("train_", "")] = record[key]
        postfix = {k: f"{v:.4f}" for k, v in shown.items() if v is not None}
        postfix["s/epoch"] = f"{record['seconds']:.3f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def lowest_val_loss(line: dict) -> float:
    loss = line.get("val_loss", math.inf)
    return loss if math.isfinite(loss) else math.inf
