"""Tests of conf/ and simulations.config: every file composes, the schema bites."""

import shutil
import tomllib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from fedgmmtree.server_app import RUN_CONFIG_KEYS
from simulations.clients import _DATA_KEYS
from simulations.config import (
    Config,
    Engine,
    Preprocess,
    Scheme,
    register_schema,
    to_run_config,
    unknown_keys,
)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GROUPS = ("dataset", "partition", "strategy", "simulation")
OPTIONS = [
    (group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*"))
]
EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))

register_schema()


def compose_config(overrides=(), config_dir=CONF, hydra=False):
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=list(overrides),
            return_hydra_config=hydra,
        )


def test_config_lists_self_explicitly_after_the_schema():
    defaults = OmegaConf.load(CONF / "config.yaml").defaults
    assert defaults[0] == "schema"
    assert "_self_" in defaults


def test_group_files_are_yaml_only():
    assert all(path.endswith(".yaml") for _, path in _option_files())
    assert len(OPTIONS) >= 15


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_config_composes_every_group_option(group, option):
    cfg = compose_config([f"{group}={option}"])

    assert OmegaConf.get_type(cfg) is Config
    assert unknown_keys(cfg) == []
    run_config = to_run_config(cfg, "out")
    assert run_config["results-dir"] == "out"
    assert OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_config_composes_every_experiment_and_its_sweep(name):
    cfg = compose_config([f"experiment={name}"], hydra=True)
    params = cfg.hydra.sweeper.params or {}

    # every value of the experiment's grid composes too
    for key, values in params.items():
        for value in str(values).split(","):
            swept = compose_config([f"experiment={name}", f"{key}={value}"])
            to_run_config(swept)
    to_run_config(cfg)


def test_default_config_is_digits_dirichlet_on_ray():
    cfg = compose_config()

    assert cfg.dataset.name == "digits"
    assert cfg.partition.scheme is Scheme.dirichlet
    assert cfg.simulation.engine is Engine.ray
    assert cfg.simulation.client_resources.num_cpus == 1.0


def test_seed_reaches_partition_and_tree():
    run_config = to_run_config(compose_config(["simulation.seed=7"]))

    assert run_config["partition-seed"] == 7
    assert run_config["random-state"] == 7


def test_schema_rejects_a_misspelt_key_in_an_override():
    with pytest.raises(ConfigCompositionException, match="strategy.max_dept"):
        compose_config(["strategy.max_dept=3"])


def test_schema_rejects_a_misspelt_key_in_a_file(tmp_path):
    config_dir = tmp_path / "conf"
    shutil.copytree(CONF, config_dir)
    (config_dir / "experiment" / "typo.yaml").write_text(
        "# @package _global_\nstrategy:\n  max_dept: 3\n"
    )

    with pytest.raises(ConfigCompositionException, match="experiment/typo") as info:
        compose_config(["experiment=typo"], config_dir=config_dir)
    assert "Key 'max_dept' not in 'StrategyConfig'" in str(info.value)


def test_run_config_rejects_a_key_added_with_plus():
    cfg = compose_config(["+strategy.max_dept=3"])

    with pytest.raises(ValueError, match=r"\['strategy.max_dept'\].*spelling"):
        to_run_config(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("simulation.num_clients=ten", "'ten' of type 'str' could not be converted"),
        ("partition.alpha=abc", "'abc' of type 'str' could not be converted"),
        ("simulation.engine=rayy", "Invalid value 'rayy'"),
        ("strategy.covariance_type=spherical", "Invalid value 'spherical'"),
        ("dataset.standardize=maybe", "'maybe' is not a valid bool"),
    ],
)
def test_schema_rejects_a_value_of_the_wrong_type(override, message):
    with pytest.raises(ConfigCompositionException, match="Error merging") as info:
        compose_config([override])
    assert message in str(info.value.__cause__)
    assert override.split("=")[0] in str(info.value.__cause__)


def test_run_config_keys_are_those_the_apps_read():
    run_config = to_run_config(compose_config())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    app_keys = set(pyproject["tool"]["flwr"]["app"]["config"])
    read = set(RUN_CONFIG_KEYS) | set(_DATA_KEYS)
    read |= {"num-rounds", "round-timeout", "results-dir"}

    assert app_keys <= set(run_config)
    assert set(run_config) <= read | app_keys


def test_run_config_for_pooled_preprocessing():
    federated = to_run_config(compose_config(["dataset=breast_cancer"]))
    pooled = to_run_config(
        compose_config(["dataset=breast_cancer", "dataset.preprocess=pooled"])
    )

    assert (federated["standardize"], federated["pca-components"]) == (True, 10)
    assert (federated["pooled-standardize"], federated["pooled-pca-components"]) == (
        False,
        0,
    )
    assert (pooled["standardize"], pooled["pca-components"]) == (False, 0)
    assert (pooled["pooled-standardize"], pooled["pooled-pca-components"]) == (
        True,
        10,
    )
    assert compose_config(["dataset.preprocess=pooled"]).dataset.preprocess is (
        Preprocess.pooled
    )


def _option_files():
    return [(g, p.name) for g in GROUPS for p in sorted((CONF / g).glob("*"))]
