"""``python -m simulations.summarize DIR``: one table of the runs under a folder.

Simulation layer. Every ``results.json`` under ``DIR`` (one run's folder or a
whole multirun folder) gives one row: the run's overrides, one column per key,
then its status, ARI, NMI, held-out mean log-likelihood, BIC, leaves, depth,
rounds, bytes sent each way and wall time. The table is printed as Markdown
and written as ``summary.md`` and ``summary.csv`` into ``DIR`` (or ``--out``).
The overrides come from ``results.json``, or from the run's
``.hydra/overrides.yaml`` when ``results.json`` has none.
"""

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# (key in results.json, column title, Markdown format)
METRICS: tuple[tuple[str, str, Callable[[object], str]], ...] = (
    ("status", "status", str),
    ("ari", "ARI", lambda v: f"{v:.3f}"),
    ("nmi", "NMI", lambda v: f"{v:.3f}"),
    ("heldout_mean_loglik", "held-out loglik", lambda v: f"{v:.3f}"),
    ("bic", "BIC", lambda v: f"{v:.1f}"),
    ("leaves", "leaves", lambda v: f"{v:d}"),
    ("depth", "depth", lambda v: f"{v:d}"),
    ("rounds", "rounds", lambda v: f"{v:d}"),
    ("bytes_down", "MB down", lambda v: f"{v / 1e6:.2f}"),
    ("bytes_up", "MB up", lambda v: f"{v / 1e6:.2f}"),
    ("total_time_s", "time (s)", lambda v: f"{v:.1f}"),
)


def collect(directory: str | Path) -> list[dict]:
    """One row per ``results.json`` under ``directory``, sorted by overrides.

    Parameters
    ----------
    directory : str or Path
        A run's folder or a multirun folder.

    Returns
    -------
    rows : list of dict
        ``run`` (the folder, relative to ``directory``), ``overrides`` (a dict
        of key to value) and the metrics of :data:`METRICS` (None where a run
        has no value).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{str(directory)!r} is not a folder.")
    rows = []
    for path in sorted(directory.rglob("results.json")):
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"Cannot read {path}: {error}") from error
        overrides = results.get("overrides")
        if overrides is None:
            overrides = _hydra_overrides(path.parent)
        row = {
            "run": path.parent.relative_to(directory).as_posix(),
            "overrides": _parse_overrides(overrides),
        }
        for key, _, _ in METRICS:
            row[key] = results.get(key)
        if row["total_time_s"] is None:
            row["total_time_s"] = results.get("wall_time_s")
        row["status"] = row["status"] or "completed"
        rows.append(row)
    if not rows:
        raise FileNotFoundError(
            f"No results.json under {str(directory)!r}; point at the folder of a "
            "run or of a multirun of python -m simulations.run."
        )
    keys = override_keys(rows)
    rows.sort(key=lambda row: [_sort_key(row["overrides"].get(k)) for k in keys])
    return rows


def override_keys(rows: Sequence[dict]) -> list[str]:
    """Every override key of the rows, in sorted order."""
    return sorted({key for row in rows for key in row["overrides"]})


def to_markdown(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table: overrides first, then the metrics."""
    keys = override_keys(rows)
    header = keys + [title for _, title, _ in METRICS]
    lines = [header]
    for row in rows:
        cells = [row["overrides"].get(key, "") for key in keys]
        cells += [_format(row[key], fmt) for key, _, fmt in METRICS]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [_markdown_row(lines[0], widths)]
    text.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    text += [_markdown_row(line, widths) for line in lines[1:]]
    return "\n".join(text)


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """The rows as CSV: ``run``, the overrides, then the raw metrics."""
    keys = override_keys(rows)
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", *keys, *(key for key, _, _ in METRICS)])
        for row in rows:
            writer.writerow(
                [
                    row["run"],
                    *(row["overrides"].get(key, "") for key in keys),
                    *("" if row[key] is None else row[key] for key, _, _ in METRICS),
                ]
            )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the table of a run or multirun folder, write it out."""
    parser = argparse.ArgumentParser(
        prog="python -m simulations.summarize",
        description="One table (Markdown and CSV) of the runs under a folder.",
    )
    parser.add_argument("directory", help="a run's folder or a multirun folder")
    parser.add_argument(
        "--out",
        default=None,
        help="folder for summary.md and summary.csv (default: the directory)",
    )
    args = parser.parse_args(argv)
    try:
        rows = collect(args.directory)
    except (FileNotFoundError, ValueError) as error:
        print(f"summarize: {error}", file=sys.stderr)
        return 1
    out = Path(args.out or args.directory)
    out.mkdir(parents=True, exist_ok=True)
    table = to_markdown(rows)
    (out / "summary.md").write_text(table + "\n")
    write_csv(rows, out / "summary.csv")
    print(table)
    print(f"\n{len(rows)} runs; written to {out / 'summary.md'} and summary.csv")
    return 0


def _markdown_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
    return "| " + " | ".join(padded) + " |"


def _hydra_overrides(folder: Path) -> list[str]:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.exists():
        return []
    from omegaconf import OmegaConf

    return [str(item) for item in OmegaConf.load(path)]


def _parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    parsed = {}
    for item in overrides:
        key, _, value = str(item).partition("=")
        parsed[key.lstrip("+~")] = value
    return parsed


def _sort_key(value: str | None) -> tuple:
    if value is None:
        return (0, 0.0, "")
    try:
        return (1, float(value), "")
    except ValueError:
        return (2, 0.0, value)


def _format(value, fmt: Callable[[object], str]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt(value)


if __name__ == "__main__":
    sys.exit(main())
