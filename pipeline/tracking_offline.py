"""Training that outlives its tracking server.

A server that stops answering while a model trains must not cost the model: the logger then
writes what it could not send (metrics, params, artifacts, the run's end) to a journal beside the
outputs, ``tracking_pending.jsonl``, and training goes on. ``python -m pipeline.tracking_offline
FOLDER...`` sends the journals to the run once the server is back (sending twice changes nothing:
MLflow keeps one copy of a metric with the same step, time and value).

MLflow retries a request for minutes by default; ``pipeline`` shortens that (see its __init__) so
that a server that went away is noticed within seconds.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import warnings
from pathlib import Path

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger

from pipeline.tracking import check_reachable, redact

JOURNAL = "tracking_pending.jsonl"
PENDING_ARTIFACTS = "tracking_pending"  # copies of artifacts that lie outside the journal's folder


def server_gone(uri: str) -> bool:
    """Whether ``uri`` is a tracking server that no longer answers (a local store never is)."""
    try:
        check_reachable(uri)
    except ValueError:
        return True
    return False


class Journal:
    """What could not reach the tracking server, one JSON object per line, for one folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / JOURNAL

    def append(self, run_id: str, kind: str, **fields) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"run_id": run_id, "kind": kind, **fields}) + "\n")

    def artifact(self, run_id: str, path: str | Path, folder: str | None) -> None:
        """An artifact, kept as a path relative to the journal's folder (copied in when outside it)."""
        path = Path(path).resolve()
        try:
            relative = path.relative_to(self.folder.resolve())
        except ValueError:
            relative = Path(PENDING_ARTIFACTS) / (folder or "") / path.name
            (self.folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.folder / relative)
        self.append(run_id, "artifact", path=relative.as_posix(), folder=folder)

    def record(self, run_id: str, kind: str, **fields) -> None:
        """One entry of any kind: an artifact (``path``, ``folder``) by :meth:`artifact`, else as given."""
        if kind == "artifact":
            self.artifact(run_id, fields["path"], fields.get("folder"))
        else:
            self.append(run_id, kind, **fields)

    def entries(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def guarded(uri: str, journal: Journal, run_id: str, send, kind: str, **fields) -> bool:
    """``send()``; when the server is gone, the entry goes to ``journal`` instead (and False is
    returned). Errors of a server that still answers, or of a local store, are raised as they are."""
    try:
        send()
        return True
    except Exception:
        if not server_gone(uri):
            raise
    journal.record(run_id, kind, **fields)
    return False


class ResilientMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger, which keeps training when the server goes away: from the first
    failed request on, everything is written to the journal of ``journal_dir`` (set by the training
    before it starts) and the server is not asked again."""

    journal_dir: Path | None = None
    shown_dir: Path | None = None  # the folder named in messages (the journal's, once training ends)
    offline = False

    def _send(self, send, kind: str, **fields) -> None:
        if self.journal_dir is None:
            send()
            return
        journal = Journal(self.journal_dir)
        if self.offline:  # the server went away: not asked again
            journal.record(self.run_id, kind, **fields)
            return
        if not guarded(self._tracking_uri, journal, self.run_id, send, kind, **fields):
            self.offline = True
            shown = self.shown_dir or journal.folder
            warnings.warn(f"MLflow tracking server {redact(self._tracking_uri)} stopped answering; training goes on "
                          f"and what it logs is kept in {shown / JOURNAL} (send it later: python -m "
                          f"pipeline.tracking_offline {shown})", RuntimeWarning, stacklevel=2)

    def log_metrics(self, metrics, step=None) -> None:
        values = {k: float(v) for k, v in metrics.items() if not isinstance(v, str)}
        self._send(lambda: super(ResilientMLFlowLogger, self).log_metrics(metrics, step), "metrics",
                   metrics=values, step=int(step or 0), timestamp=int(time.time() * 1000))

    def log_hyperparams(self, params) -> None:
        flat = {k: str(v)[:250] for k, v in _flatten_dict(_convert_params(params)).items()}
        self._send(lambda: super(ResilientMLFlowLogger, self).log_hyperparams(params), "params", params=flat)

    def finalize(self, status: str = "success") -> None:
        mlflow_status = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED"}.get(status, status)
        if self._initialized:
            self._send(lambda: super(ResilientMLFlowLogger, self).finalize(status), "status", status=mlflow_status)

    def terminate(self, status: str) -> None:
        """End the run ``status`` (FAILED, KILLED): after an error or an interruption."""
        self._send(lambda: self.experiment.set_terminated(self.run_id, status), "status", status=status)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self._send(lambda: self.experiment.log_artifact(self.run_id, str(path), folder), "artifact",
                   path=str(path), folder=folder)


def replay(journal: Journal, client) -> int:
    """Send ``journal``'s entries to their runs through ``client``; returns how many were sent."""
    from mlflow.entities import Metric, Param

    status: dict[str, str] = {}
    entries = journal.entries()
    for entry in entries:
        run_id, kind = entry["run_id"], entry["kind"]
        if kind == "metrics":
            client.log_batch(run_id, metrics=[Metric(k, v, entry["timestamp"], entry["step"])
                                              for k, v in entry["metrics"].items()])
        elif kind == "params":
            items = [Param(k, v) for k, v in entry["params"].items()]
            for start in range(0, len(items), 100):
                client.log_batch(run_id, params=items[start:start + 100])
        elif kind == "artifact":
            client.log_artifact(run_id, str(journal.folder / entry["path"]), entry["folder"])
        elif kind == "status":
            status[run_id] = entry["status"]
        else:
            raise ValueError(f"{journal.path}: unknown entry kind {kind!r}")
    for run_id, value in status.items():  # last: a run ended before its metrics arrive would look complete
        client.set_terminated(run_id, value)
    return len(entries)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipeline.cli import user_errors
    from pipeline.config import load_params
    from pipeline.tracking import tracking_uri

    parser = argparse.ArgumentParser(description="Send what a training or evaluation kept in tracking_pending.jsonl "
                                                 "(while its MLflow server was away) to its run.")
    parser.add_argument("folders", nargs="+", help="folders searched for tracking_pending.jsonl (e.g. models reports)")
    parser.add_argument("--params", default="params.yaml", help="the logger settings (tracking URI) to use")
    parser.add_argument("--tracking-uri", help="the server to send to (default: the one of --params)")

    @user_errors
    def run(args):
        uri = args.tracking_uri or tracking_uri(load_params(args.params).logger)
        check_reachable(uri)
        client = MlflowClient(tracking_uri=uri)
        journals = [Journal(path.parent) for folder in args.folders for path in sorted(Path(folder).rglob(JOURNAL))]
        if not journals:
            raise FileNotFoundError(f"no {JOURNAL} in {', '.join(args.folders)}: nothing waits to be sent")
        for journal in journals:
            try:
                sent = replay(journal, client)
            except MlflowException as exc:
                raise ValueError(f"{journal.path}: {exc.message.splitlines()[0]} (is {redact(uri)} the server "
                                 "the training logged to? choose it with --tracking-uri)") from None
            print(f"{journal.path}: {sent} entries sent to {redact(uri)}")

    run(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
