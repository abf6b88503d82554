"""conf/ and params.yaml are one source of truth."""

from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

from pipeline.config import CONF_DIR, PROJECT_ROOT, compose
from pipeline.data.sources import SOURCES


def test_params_yaml_is_exactly_the_composed_conf(tmp_path):
    """Fails when conf/ and params.yaml drift; fix with `python stages/sync_params.py`."""
    composed = tmp_path / "params.yaml"
    compose_and_dump(composed, str(CONF_DIR), None, "config", str(PROJECT_ROOT), [])
    committed = (PROJECT_ROOT / "params.yaml").read_text()
    assert yaml.safe_load(committed) == yaml.safe_load(composed.read_text()), (
        "params.yaml disagrees with conf/: run `python stages/sync_params.py`")
    assert committed == composed.read_text()


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml") if p.stem[0] != "_"))
def test_every_data_option_composes_to_a_known_format(option):
    cfg = compose([f"data={option}"])
    assert cfg.data.format in SOURCES
    assert cfg.data.root, "dvc.yaml depends on ${data.root}: every data option sets it"
    assert abs(sum(cfg.data.split.values()) - 1) < 1e-9


def test_override_syntax_reaches_nested_keys():
    cfg = compose(["data=raccoon", "data.root=/data/raccoon", "data.boxes.clip_tolerance=5"])
    assert (cfg.data.format, cfg.data.root, cfg.data.boxes.clip_tolerance) == ("voc", "/data/raccoon", 5)


def test_dvc_stages_name_only_params_that_exist():
    dvc = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    for name, stage in dvc["stages"].items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"stage {name} names param {key} missing from params.yaml"
                node = node[part]


def test_no_absolute_or_home_paths_in_params():
    text = (PROJECT_ROOT / "params.yaml").read_text()
    assert str(Path.home()) not in text and "/root/" not in text and "/home/" not in text
