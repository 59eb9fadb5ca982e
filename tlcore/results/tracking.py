"""Runs in the tools people already use: TensorBoard event files always, MLflow when it is asked for.

Every run writes TensorBoard events under `<data folder>/runs/tensorboard/<experiment>/<run>`, so
`tensorboard --logdir <data folder>/runs` lists all runs, those of one comparison side by side.
When `MLFLOW_TRACKING_URI` is set, the run is also logged to MLflow: the run config as parameters,
the metrics per epoch, and the evaluation and the best checkpoint as artifacts. A tracker never
fails a run: a problem is said once, as a warning, and the run goes on.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tlcore.core.net import not_http, unreachable
from tlcore.core.paths import data_home

__all__ = ["RunTracker", "tensorboard_dir", "TENSORBOARD", "MLFLOW_ID_FILE", "confusion_image", "unreachable_server"]

TENSORBOARD = "tensorboard"  # under <data folder>/runs; run ids never take this name
MLFLOW_ID_FILE = "mlflow_run_id.txt"  # in the run folder: a resumed run logs to the same MLflow run


def tensorboard_dir(run_id: str, name: str, sweep: str | None, seed: int) -> Path:
    """One folder per run, grouped by its comparison (or "single runs"), named as people read it.

    Args:
        run_id: the run's id.
        name: its name.
        sweep: its comparison, if any.
        seed: its seed.

    Returns:
        The folder under the data folder's tensorboard/.
    """
    label = re.sub(r"[^\w.\- ·()]+", "_", f"{name or 'run'} seed {seed} ({run_id})")
    return data_home() / "runs" / TENSORBOARD / (sweep or "single runs") / label


def _flat(config: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and key != "augment":
            out.update(_flat(value, f"{prefix}{key}."))
        elif key == "augment":
            out[f"{prefix}augment.preset"] = str(value.get("preset"))
            out[f"{prefix}augment.transforms"] = json.dumps(value.get("transforms", []))[:500]
        else:
            out[f"{prefix}{key}"] = json.dumps(value)[:500] if isinstance(value, (list, tuple)) else str(value)
    return out


def confusion_image(confusion: list[list[int]], classes: list[str], cell: int = 48) -> np.ndarray:
    """The confusion matrix as a picture (HWC, uint8): rows true class, columns predicted, counts written in.

    Args:
        confusion: the counts, rows true class.
        classes: the class names.
        cell: pixels per cell.

    Returns:
        The picture.
    """
    from PIL import Image, ImageDraw

    matrix = np.asarray(confusion, dtype=float)
    k = len(matrix)
    margin = 8 * max(len(c) for c in classes[:k]) + 16
    image = Image.new("RGB", (margin + k * cell, margin + k * cell), "white")
    draw = ImageDraw.Draw(image)
    top = matrix.max() or 1.0
    for i in range(k):
        draw.text((4, margin + i * cell + cell // 2 - 6), classes[i], fill="black")
        draw.text((margin + i * cell + 4, margin - 16), classes[i][: cell // 7], fill="black")
        for j in range(k):
            shade = int(255 - 200 * matrix[i, j] / top)
            box = (margin + j * cell, margin + i * cell, margin + (j + 1) * cell - 1, margin + (i + 1) * cell - 1)
            draw.rectangle(box, fill=(shade, shade, 255))
            draw.text((box[0] + 6, box[1] + cell // 2 - 6), str(int(matrix[i, j])), fill="black")
    return np.asarray(image)


def unreachable_server(uri: str, timeout_s: float = 5.0) -> str | None:
    """Why an http(s) tracking server cannot be reached within `timeout_s` (nothing listening, no such host),
    or None when it answers HTTP or the URI is not a server (a folder, a database file).

    Args:
        uri: the MLFLOW_TRACKING_URI.
        timeout_s: how long to wait for a connection.
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    silent = unreachable(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80), timeout_s)
    # a server that accepts connections and never answers would hold the run for ever: it must answer HTTP
    return silent or not_http(f"{uri.rstrip('/')}/health", timeout_s)


class RunTracker:
    """Mirrors one run's epochs and evaluation into TensorBoard (and MLflow when `MLFLOW_TRACKING_URI` is set)."""

    def __init__(self, run_id: str, name: str, sweep: str | None, config: dict, run_dir: str | Path,
                 warn: Callable[[str], None]) -> None:
        self.warn, self.run_dir, self.writer, self.mlflow = warn, Path(run_dir), None, None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tensorboard_dir(run_id, name, sweep, int(config.get("seed", 0)))))
            self.writer.add_text("config", f"```\n{json.dumps(config, indent=1)}\n```")
        except ImportError:
            warn("TensorBoard files are not written: the tensorboard package is missing (pip install tensorboard)")
        except Exception as exc:  # noqa: BLE001 - a tracker must never fail the run
            warn(f"TensorBoard files are not written: {exc}")
        if os.environ.get("MLFLOW_TRACKING_URI"):
            self._start_mlflow(run_id, name, sweep, config)

    def _start_mlflow(self, run_id: str, name: str, sweep: str | None, config: dict) -> None:
        try:
            import mlflow
        except ImportError:
            self.warn("MLFLOW_TRACKING_URI is set but mlflow is not installed: pip install mlflow-skinny; this run "
                      "is not logged to MLflow")
            return
        silent = unreachable_server(os.environ["MLFLOW_TRACKING_URI"])
        # a server that answers now but hangs later: MLflow's client gives up after 10 s, once, instead of minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        if silent:  # MLflow's own client retries for minutes before it gives up, and training waits meanwhile
            self.warn(f"this run is not logged to MLflow: {silent}")
            return
        try:
            mlflow.set_experiment(sweep or "Transfer Lab runs")
            known = self.run_dir / MLFLOW_ID_FILE
            if known.exists():  # a resumed run goes on in its MLflow run
                active = mlflow.start_run(run_id=known.read_text().strip())
            else:
                active = mlflow.start_run(run_name=f"{name or 'run'} seed {config.get('seed', 0)}",
                                          tags={"transferlab.run_id": run_id, "transferlab.sweep": sweep or ""})
                self.run_dir.mkdir(parents=True, exist_ok=True)
                known.write_text(active.info.run_id)
                mlflow.log_params(_flat(config))
            self.mlflow = mlflow
        except Exception as exc:  # noqa: BLE001 - a tracking server down must not stop training
            self.warn(f"this run is not logged to MLflow: {type(exc).__name__}: {exc}")

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001
            self.warn(f"{what} was not logged: {type(exc).__name__}: {exc}")
            if what.startswith("MLflow"):
                self.mlflow = None
            else:
                self.writer = None

    def epoch(self, metrics: dict) -> None:
        """Logs one epoch's metrics to TensorBoard and MLflow (those that are on).

        Args:
            metrics: the epoch's metrics by name.
        """
        step = int(metrics["epoch"]) + 1
        scalars = {"loss/train": metrics.get("train_loss"), "loss/val": metrics.get("val_loss"),
                   "accuracy/train": metrics.get("train_acc"), "accuracy/val": metrics.get("val_acc"),
                   "speed/images_per_s": metrics.get("images_per_s"),
                   **{f"lr/{group}": lr for group, lr in metrics.get("lr_groups", {}).items()}}
        scalars = {k: float(v) for k, v in scalars.items() if v is not None}
        if self.writer is not None:
            def write() -> None:
                for tag, value in scalars.items():
                    self.writer.add_scalar(tag, value, step)
                self.writer.flush()
            self._guard("TensorBoard", write)
        if self.mlflow is not None:
            self._guard("MLflow", lambda: self.mlflow.log_metrics(
                {re.sub(r"[^\w./ -]", "_", k): v for k, v in scalars.items()}, step=step))

    def evaluated(self, evaluation, artifacts: list[Path]) -> None:
        """Logs the test evaluation and the run's files.

        Args:
            evaluation: the test results.
            artifacts: files to attach (MLflow).
        """
        if self.writer is not None:
            def write() -> None:
                self.writer.add_scalar("test/accuracy", evaluation.accuracy, 0)
                self.writer.add_scalar("test/balanced_accuracy", evaluation.balanced_accuracy, 0)
                self.writer.add_image("test/confusion_matrix", confusion_image(evaluation.confusion,
                                                                                evaluation.classes), 0,
                                      dataformats="HWC")
                self.writer.flush()
            self._guard("TensorBoard", write)
        if self.mlflow is not None:
            def log() -> None:
                self.mlflow.log_metrics({"test_accuracy": evaluation.accuracy,
                                         "test_balanced_accuracy": evaluation.balanced_accuracy})
                for path in artifacts:
                    if path.exists():
                        self.mlflow.log_artifact(str(path), artifact_path="model" if path.suffix == ".safetensors"
                                                 else None)
            self._guard("MLflow", log)

    def close(self, status: str) -> None:
        """Ends the tracking run with the run's status.

        Args:
            status: succeeded, failed or cancelled.
        """
        if self.writer is not None:
            self._guard("TensorBoard", self.writer.close)
        if self.mlflow is not None:
            mlflow_status = {"succeeded": "FINISHED", "cancelled": "KILLED"}.get(status, "FAILED")
            self._guard("MLflow", lambda: self.mlflow.end_run(status=mlflow_status))
