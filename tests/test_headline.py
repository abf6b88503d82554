"""The headline metrics (metrics/<model>.json): the registry's keys, read from the evaluation's results."""

import pytest

from pipeline.data.prepare import HEADLINE as PREPARE_HEADLINE
from pipeline.tasks import TASKS, headline_metrics
from pipeline.tracking import runs_view


def test_headline_keys_differ_across_every_metrics_file():
    """`dvc exp show` heads a column with the bare key only when no other metrics file has it."""
    keys = [*PREPARE_HEADLINE]
    for task in TASKS.values():
        keys += [key for key, _ in task.headline] + [task.seconds_key]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_the_headline_keeps_four_decimals_in_the_registrys_order_and_the_training_seconds():
    results = {"val": {"accuracy": 0.987654321, "macro_f1": 0.5}, "test": {"accuracy": 1.0, "macro_f1": 0.25}}
    assert headline_metrics(TASKS["classifier"], results, 130.04) == {
        "acc": 0.9877, "f1": 0.5, "test_acc": 1.0, "test_f1": 0.25, "cls_s": 130.0}


def test_a_split_the_data_lacks_is_left_out_but_a_missing_figure_is_an_error():
    only_val = {"val": {"map": 0.5, "map_50": 0.9, "best_f1": 0.8, "best_f1_confidence": 0.3}}
    assert headline_metrics(TASKS["detector"], only_val, None) == {
        "map50": 0.9, "map": 0.5, "best_f1": 0.8, "f1_conf": 0.3}
    with pytest.raises(KeyError):  # the registry names a figure the evaluation did not write
        headline_metrics(TASKS["detector"], {"val": {"map": 0.5}}, None)


def test_the_mlflow_runs_view_shows_every_headline_key():
    columns = runs_view()
    for task in TASKS.values():
        for key in [k for k, _ in task.headline] + [task.seconds_key]:
            assert f'"metrics.`{key}`"' in columns, key
