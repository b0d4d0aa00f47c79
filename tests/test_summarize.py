"""Tests of simulations.summarize: rows, overrides, Markdown and CSV, errors."""

import csv
import json

import pytest

from simulations import summarize


def write_run(folder, overrides=None, hydra_overrides=None, **results):
    folder.mkdir(parents=True)
    base = {
        "status": "completed",
        "ari": 0.5,
        "nmi": 0.6,
        "heldout_mean_loglik": -3.25,
        "bic": 1234.5,
        "leaves": 4,
        "depth": 2,
        "rounds": 12,
        "bytes_down": 2_500_000,
        "bytes_up": 1_000_000,
        "total_time_s": 3.14,
    }
    base.update(results)
    if overrides is not None:
        base["overrides"] = overrides
    if hydra_overrides is not None:
        (folder / ".hydra").mkdir()
        lines = "".join(f"- {item}\n" for item in hydra_overrides)
        (folder / ".hydra" / "overrides.yaml").write_text(lines)
    (folder / "results.json").write_text(json.dumps(base))


@pytest.fixture
def sweep(tmp_path):
    write_run(tmp_path / "a", ["partition=dirichlet", "partition.alpha=1.0"], ari=0.7)
    write_run(tmp_path / "b", ["partition=dirichlet", "partition.alpha=0.1"], ari=0.2)
    write_run(tmp_path / "c", ["partition=iid", "+simulation.seed=3"])
    write_run(
        tmp_path / "d",
        hydra_overrides=["partition=dirichlet", "partition.alpha=10.0"],
        status="failed",
        ari=None,
        nmi=None,
        leaves=None,
        depth=None,
        heldout_mean_loglik=float("nan"),
    )
    return tmp_path


def test_collect_gives_one_row_per_run_sorted_by_overrides(sweep):
    rows = summarize.collect(sweep)

    assert [row["run"] for row in rows] == ["b", "a", "d", "c"]
    assert rows[0]["overrides"] == {"partition": "dirichlet", "partition.alpha": "0.1"}
    assert rows[3]["overrides"] == {"partition": "iid", "simulation.seed": "3"}
    assert rows[2]["status"] == "failed"
    assert summarize.override_keys(rows) == [
        "partition",
        "partition.alpha",
        "simulation.seed",
    ]


def test_collect_reads_hydra_overrides_when_results_have_none(sweep):
    rows = {row["run"]: row for row in summarize.collect(sweep)}

    assert rows["d"]["overrides"]["partition.alpha"] == "10.0"


def test_markdown_table_formats_metrics_and_marks_missing_values(sweep):
    table = summarize.to_markdown(summarize.collect(sweep))
    lines = table.splitlines()

    assert lines[0].split("|")[1].strip() == "partition"
    assert "ARI" in lines[0] and "MB down" in lines[0] and "time (s)" in lines[0]
    assert set(lines[1]) <= {"|", "-"}
    assert len(lines) == 6
    first = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert first[:3] == ["dirichlet", "0.1", ""]
    assert first[3:6] == ["completed", "0.200", "0.600"]
    assert "2.50" in first and "1.00" in first and "3.1" in first
    failed = [cell.strip() for cell in lines[4].strip("|").split("|")]
    assert failed[3] == "failed"
    assert failed[4:7] == ["-", "-", "-"]
    assert len({len(line) for line in lines}) == 1


def test_csv_holds_raw_values(sweep, tmp_path):
    rows = summarize.collect(sweep)
    path = summarize.write_csv(rows, tmp_path / "out.csv")

    with path.open() as handle:
        records = list(csv.DictReader(handle))
    assert [r["run"] for r in records] == ["b", "a", "d", "c"]
    assert records[0]["bytes_down"] == "2500000"
    assert float(records[0]["ari"]) == 0.2
    assert records[2]["ari"] == ""


def test_main_prints_the_table_and_writes_both_files(sweep, capsys):
    assert summarize.main([str(sweep)]) == 0

    out = capsys.readouterr().out
    assert out.startswith("| partition")
    assert "4 runs" in out
    assert (sweep / "summary.md").read_text().startswith("| partition")
    assert (sweep / "summary.csv").exists()


def test_main_on_a_single_run_folder(tmp_path, capsys):
    write_run(tmp_path / "run", overrides=[])

    assert summarize.main([str(tmp_path / "run"), "--out", str(tmp_path / "o")]) == 0
    assert "| status" in capsys.readouterr().out
    assert (tmp_path / "o" / "summary.csv").exists()


def test_collect_rejects_a_folder_without_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="No results.json under"):
        summarize.collect(tmp_path)


def test_collect_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        summarize.collect(tmp_path / "missing")


def test_collect_names_an_unreadable_results_file(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text("{not json")

    with pytest.raises(ValueError, match="Cannot read .*results.json"):
        summarize.collect(tmp_path)


def test_main_reports_errors_in_one_line(tmp_path, capsys):
    assert summarize.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("summarize: No results.json")
