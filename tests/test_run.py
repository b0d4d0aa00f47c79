"""Tests of python -m simulations.run: a multirun on tiny data, and the Ray engine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from fedgmmtree import GMMTree
from simulations import summarize
from simulations.config import register_schema
from simulations.run import run

ROOT = Path(__file__).resolve().parents[1]
RUN_FILES = {
    "results.json",
    "model.npz",
    "tree.png",
    "projection.png",
    "loglik.png",
    "run.log",
}

register_schema()


def compose_config(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    """Two runs of the smoke experiment, through the command line."""
    sweep = tmp_path_factory.mktemp("multirun")
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulations.run",
            "-m",
            "experiment=smoke",
            "partition=iid,dirichlet",
            "partition.alpha=1.0",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return sweep, completed.stdout + completed.stderr


def test_multirun_writes_one_folder_per_run_named_from_its_overrides(multirun):
    sweep, _ = multirun
    folders = sorted(p.name for p in sweep.iterdir() if p.is_dir())

    assert folders == [
        "experiment=smoke,partition.alpha=1.0,partition=dirichlet",
        "experiment=smoke,partition.alpha=1.0,partition=iid",
    ]
    for name in folders:
        assert RUN_FILES <= {p.name for p in (sweep / name).iterdir()}
        for plot in ("tree.png", "projection.png", "loglik.png"):
            assert (sweep / name / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_multirun_results_and_model(multirun):
    sweep, _ = multirun
    folder = sweep / "experiment=smoke,partition.alpha=1.0,partition=iid"
    results = json.loads((folder / "results.json").read_text())
    model = GMMTree.load(folder / "model.npz")

    assert results["status"] == "completed"
    assert results["overrides"] == [
        "experiment=smoke",
        "partition=iid",
        "partition.alpha=1.0",
    ]
    assert results["engine"] == "inprocess"
    assert results["ari"] > 0.9
    assert np.isfinite(results["heldout_mean_loglik"])
    assert np.isfinite(results["bic"])
    assert results["leaves"] == model.n_leaves_
    assert results["rounds"] == len(results["history"])
    assert results["bytes_down"] > 0
    assert results["bytes_up"] > 0
    assert results["run_config"]["results-dir"] == str(folder)


def test_multirun_prints_every_flower_line_once(multirun):
    sweep, output = multirun
    log_file = sweep / "experiment=smoke,partition.alpha=1.0,partition=iid/run.log"

    assert output.count("[ROUND 1] active nodes") == 2
    assert output.count("Starting FedGMMTree strategy") == 2
    assert log_file.read_text().count("[ROUND 1] active nodes") == 1


def test_summarize_prints_one_row_per_run(multirun, capsys):
    sweep, _ = multirun

    assert summarize.main([str(sweep)]) == 0
    table = capsys.readouterr().out
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 3
    assert "partition.alpha" in lines[0] and "ARI" in lines[0]
    assert "completed" in lines[1] and "completed" in lines[2]
    assert (sweep / "summary.csv").read_text().count("\n") == 3


@pytest.mark.slow
def test_run_on_ray_equals_in_process_with_faults(tmp_path):
    overrides = [
        "experiment=smoke",
        "plots=false",
        "simulation.dropout=0.2",
        "simulation.late=0.1",
        "strategy.min_replies=0.3",
    ]
    ray = run(
        compose_config([*overrides, "simulation.engine=ray"]),
        tmp_path / "ray",
    )
    inprocess = run(
        compose_config([*overrides, "simulation.engine=inprocess"]),
        tmp_path / "inprocess",
    )

    assert ray["engine"] == "ray"
    assert ray["status"] == "completed"
    assert (tmp_path / "ray" / "model.npz").exists()
    for key in ("ari", "nmi", "heldout_mean_loglik", "bic", "leaves", "rounds"):
        assert ray[key] == inprocess[key], key
    assert ray["bytes_up"] == inprocess["bytes_up"]
    # some rounds went on without every client
    assert min(r["clients"] for r in ray["history"]) < 3


def test_run_that_loses_too_many_clients_is_recorded_as_failed(tmp_path):
    cfg = compose_config(
        [
            "experiment=smoke",
            "simulation.engine=inprocess",
            "simulation.dropout=0.9",
            "strategy.max_retries=1",
        ]
    )

    results = run(cfg, tmp_path, overrides=["simulation.dropout=0.9"])

    saved = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == saved["status"] == "failed"
    assert "too few clients answered" in saved["error"]
    assert saved["overrides"] == ["simulation.dropout=0.9"]
    assert not (tmp_path / "model.npz").exists()


def test_simulate_is_the_programmatic_entry():
    import simulations
    from simulations.datasets import make_blobs
    from strategies import FedGMMTree

    data = make_blobs(n_samples=120, random_state=2)
    parts = [slice(0, 50), slice(50, 120)]
    strategy = FedGMMTree(n_init=1, max_iter=30, tol=1e-2, random_state=0)

    model, history = simulations.simulate(
        [data.X[p] for p in parts], strategy, labels=[data.y[p] for p in parts]
    )

    assert isinstance(model, GMMTree)
    assert len(history["rounds"]) == model.n_rounds_
    assert history["evaluation"]["ari"] > 0.9
