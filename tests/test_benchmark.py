import csv
from pathlib import Path

from hydra import compose, initialize_config_dir

from simulations.benchmark import METRICS, run_benchmark

CONF = Path(__file__).resolve().parents[1] / "conf"


def _compose(overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("benchmark", overrides=overrides)


def test_run_benchmark_tiny_grid_writes_one_row_per_method(tmp_path, capsys):
    cfg = _compose(
        [
            "datasets=[iris,gagolewski/uci/wine:std]",
            "partitions=[iid]",
            "seeds=[0]",
            "clients=3",
            "methods=[kfed,gmm_central]",
            "engine_check.enabled=false",
        ]
    )

    table = run_benchmark(cfg, tmp_path)

    assert [(r["dataset"], r["method"]) for r in table] == [
        ("iris", "k-FED (nearest centre)"),
        ("iris", "GaussianMixture (central)"),
    ]
    with (tmp_path / "benchmark.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for metric, _, _ in METRICS:
        assert {f"{metric}_mean", f"{metric}_sd"} <= set(rows[0])
    assert 0.5 < float(rows[1]["ari_mean"]) <= 1.0
    markdown = (tmp_path / "benchmark.md").read_text()
    assert "gagolewski/uci/wine:std skipped: no data_dir given" in markdown
    assert markdown.count("| iris | iid |") == 2
    out = capsys.readouterr().out
    assert "| iris | iid |" in out
    assert f"benchmark_runs.csv are in {tmp_path.resolve()}" in out


def test_benchmark_grids_replace_the_default_settings():
    default = _compose([])
    quick = _compose(["benchmark_grid=quick"])
    full = _compose(["benchmark_grid=full"])
    assert list(quick.datasets) == [
        "digits:pca20",
        "wine:std",
        "breast_cancer:std",
        "hierarchical",
    ]
    assert list(quick.partitions) == ["iid", "dirichlet_0.1"]
    assert list(full.seeds) == [0, 1, 2, 3, 4]
    assert full.fedgmmtree.n_init == 3 and default.fedgmmtree.n_init == 1
    assert len(full.datasets) > len(default.datasets)
    # a command-line override still wins over the grid
    assert list(_compose(["benchmark_grid=quick", "seeds=[0]"]).seeds) == [0]


def test_remedy_variants_run_on_their_cells_only(tmp_path):
    cfg = _compose(
        [
            "datasets=[iris,wine:std]",
            "partitions=[iid]",
            "seeds=[0]",
            "clients=3",
            "methods=[fedgmmtree]",
            "remedies.datasets=[iris]",
            "remedies.partitions=[iid]",
            "remedies.refine_leaves=5",
            "engine_check.enabled=false",
        ]
    )

    table = run_benchmark(cfg, tmp_path)

    by_cell = {}
    for row in table:
        by_cell.setdefault(row["dataset"], {})[row["method"]] = row
    assert set(by_cell["wine:std"]) == {"FedGMMTree (n_clusters)"}
    assert set(by_cell["iris"]) == {
        "FedGMMTree (n_clusters)",
        "FedGMMTree + refine_leaves (n_clusters)",
        "FedGMMTree grown by AIC, merged (n_clusters)",
        "FedGMMTree n_init=3, init_steps=5 (n_clusters)",
    }
    plain = by_cell["iris"]["FedGMMTree (n_clusters)"]
    refined = by_cell["iris"]["FedGMMTree + refine_leaves (n_clusters)"]
    # the same growth, then at most 5 rounds of flat EM over the leaves
    assert plain["rounds_mean"] < refined["rounds_mean"] <= plain["rounds_mean"] + 5
    for row in by_cell["iris"].values():
        assert 0.3 < row["ari_mean"] <= 1.0
