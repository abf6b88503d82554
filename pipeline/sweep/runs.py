"""What a sweep's MLflow runs carry and how its trials are found: the tags each trial's run gets
(pipeline.sweep.trial writes them, pipeline.sweep.summary reads them) and the query for the
trials nested under a parent run (pipeline.sweep.parent)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from pipeline.tracking import PARENT_TAG

STATE_TAG, TRIAL_TAG, OVERRIDES_TAG, DIR_TAG = "sweep.state", "sweep.trial", "sweep.overrides", "sweep.trial_dir"


def children(client: MlflowClient, parent: dict) -> list:
    """The trials' runs of the sweep whose parent run is ``parent`` (its parent file's record)."""
    return client.search_runs([parent["experiment_id"]], filter_string=f"tags.`{PARENT_TAG}` = '{parent['run_id']}'",
                              max_results=50000)
