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
    assert "| iris | iid |" in capsys.readouterr().out


def test_benchmark_configs_compose():
    for grid in ("full", "quick"):
        cfg = _compose([f"benchmark_grid={grid}"])
        assert cfg.datasets and cfg.seeds
