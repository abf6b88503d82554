"""A real MLflow server on a loopback port, a 2-trial sweep logged to it over HTTP, and MLflow's
experiment page and run comparison view checked in a real headless Chromium (Playwright, Debian's
/usr/bin/chromium).

The screenshot goes to $CVPIPE_TEST_ARTIFACTS (default: the test's temporary folder)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.sweep.parent import read_parent
from pipeline.sweep.runs import children
from pipeline.tasks import TASKS
from pipeline.tracking import ui_address
from tests.conftest import PROJECT_ROOT
from tests.mlflow_server import mlflow_server
from tests.sweep.test_sweeps import TINY

pytestmark = pytest.mark.slow
CHROMIUM = os.environ.get("CVPIPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def mlflow_number(value: float) -> str:
    """How MLflow's UI prints a metric below 10: three decimals, trailing zeros dropped."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def objective_row(page) -> list[str]:
    """The values of the metric `objective` in the compare view's metrics table, left to right.
    The table is virtualised (only rows near the view exist) and its names and values are two
    grids side by side: both are scrolled to the same offset until the row's name is inside the
    visible table; its values are the cells level with it."""
    names = page.get_by_text("epoch", exact=True).last.locator(
        "xpath=ancestor::div[contains(@class,'ReactVirtualized__Grid')][not(contains(@class,'inner'))][1]")
    names.scroll_into_view_if_needed()
    found = names.element_handle().evaluate("""async (names) => {
        const top = names.getBoundingClientRect().top;
        const values = [...document.querySelectorAll('.ReactVirtualized__Grid')].find(
            g => g !== names && Math.abs(g.getBoundingClientRect().top - top) < 30);
        const row = () => [...names.querySelectorAll('*')].find(e => [...e.childNodes].some(
            n => n.nodeType === Node.TEXT_NODE && n.textContent.trim() === 'objective'));
        for (let step = 0; step < 200; step++) {
            await new Promise(done => setTimeout(done, 100));  // let both grids render
            const name = row(), view = names.getBoundingClientRect();
            if (name && names.scrollTop === values.scrollTop) {
                const cell = name.parentElement.getBoundingClientRect();
                if (cell.top >= view.top && cell.bottom <= view.bottom) {
                    const cells = [];
                    for (const e of values.querySelectorAll('*')) {
                        const r = e.getBoundingClientRect(), middle = (r.top + r.bottom) / 2;
                        const own = [...e.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)
                            .map(n => n.textContent.trim()).join('');
                        if (own && middle > cell.top && middle < cell.bottom) cells.push([r.left, own]);
                    }
                    return cells.sort((a, b) => a[0] - b[0]).map(c => c[1]);
                }
            }
            values.scrollTop += 30;
            names.scrollTop = values.scrollTop;
        }
        return null;
    }""")
    assert found is not None, "no `objective` row in MLflow's metrics table"
    return found


def test_mlflow_ui_lists_the_trainings_and_compares_both_trials_of_a_sweep_logged_to_a_server(tmp_path,
                                                                                             sweep_data_cache):
    missing = pytest.fail if os.environ.get("CVPIPE_REQUIRE_BROWSER") else pytest.skip  # CI requires it
    if not Path(CHROMIUM).is_file():
        missing(f"no Chromium at {CHROMIUM}: apt-get install chromium (`make test` does as root)")
    from playwright import sync_api as playwright
    shots = Path(os.environ.get("CVPIPE_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with mlflow_server(tmp_path) as url:
        sweep_dir = tmp_path / "sweep"
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.sweep", "-m", "sweep=classifier", *TINY, "train.classifier.epochs=2",
             "train.classifier.lr=0.001,0.01", f"logger.tracking_uri={url}", f"sweep.data_cache={sweep_data_cache}",
             f"hydra.sweep.dir={sweep_dir}"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-6000:]
        client, parent = MlflowClient(tracking_uri=url), read_parent(sweep_dir)
        assert parent["tracking_uri"] == url and client.get_run(parent["run_id"]).info.status == "FINISHED"
        trials = sorted(children(client, parent), key=lambda r: int(r.data.tags["sweep.trial"]))
        assert len(trials) == 2
        ids = [r.info.run_id for r in trials]
        view = (f"{url}/#/compare-runs?runs={json.dumps(ids)}"
                f"&experiments={json.dumps([parent['experiment_id']])}")
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 2600, "height": 1400})
                page.goto(ui_address(url, parent["experiment_id"]))  # the address `make ui` prints
                page.get_by_text("Run Name", exact=True).first.wait_for(timeout=90_000)
                # the trials are nested under the sweep's run: open it
                page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
                for run in trials:
                    page.get_by_text(run.info.run_name, exact=True).first.wait_for(timeout=30_000)
                landing, listed = page.url, page.inner_text("body")
                page.screenshot(path=str(shots / "mlflow_runs.png"))
                page.goto(view)
                for run in trials:
                    page.get_by_text(run.info.run_name, exact=True).first.wait_for(timeout=90_000)
                page.wait_for_timeout(1500)  # let the plots settle before the picture
                page.screenshot(path=str(shots / "mlflow_compare.png"))
                text = page.inner_text("body")
                shown = objective_row(page)
                page.screenshot(path=str(shots / "mlflow_compare_objective.png"))
            finally:
                browser.close()
    # The experiment opens on its training runs, not on MLflow's GenAI overview (traces, token usage)
    assert f"/#/experiments/{parent['experiment_id']}/runs?" in landing, landing
    assert "Token Usage" not in listed and "Dataset" in listed, listed[:2000]
    names = [run.info.run_name for run in trials]
    assert len(set(names)) == len(names) and all(name.startswith("synthetic_tiny · classifier ") for name in names)
    digest = trials[0].inputs.dataset_inputs[0].dataset.digest
    assert listed.count(f"synthetic_tiny ({digest})") == len(trials), listed[:2000]  # each training's dataset
    # the runs table opens on the headline metrics (the keys of metrics/classifier.json), with each trial's value
    words = listed.split()
    headline = [key for key, _ in TASKS["classifier"].headline]
    assert all(key in words for key in headline), (headline, listed[:3000])
    for run in trials:
        assert f"{run.data.metrics['f1']:g}" in words, (run.data.metrics, listed[:3000])  # 4 decimals, as logged
    assert f"Comparing {len(trials)} Runs" in text, text[:2000]
    details = text[text.index("Run details"):]
    for run in trials:
        assert run.info.run_name in details and run.info.run_id in details
        assert run.data.params["train.classifier.lr"] in details
    # The compare view's columns follow the order of the runs in its address: trial 0, trial 1.
    assert shown == [mlflow_number(r.data.metrics["objective"]) for r in trials], shown
    for name in ("mlflow_runs.png", "mlflow_compare.png", "mlflow_compare_objective.png"):
        assert (shots / name).stat().st_size > 10_000
