import re

import numpy as np
import pytest

from simulations import perf
from simulations.engine import InProcessGrid
from strategies import FedGMMTree


def test_noop_server_replays_the_recorded_messages(no_data_warnings):
    X, _ = perf.hierarchy_data(300, 4, seed=3)
    parts = np.array_split(X, 3)
    _, recorder = perf.run_recorded(FedGMMTree(random_state=0), parts, num_rounds=2)
    pattern = perf.message_pattern(recorder)

    replay = perf.RecordingApp(perf.noop_app)
    configs = [{"partition-id": i, "num-partitions": 3} for i in range(3)]
    perf.NoOpServer(pattern).start(InProcessGrid(replay, configs))

    def per_round(exchanges):
        rounds = {}
        for e in exchanges:
            rounds.setdefault((e.server_round, e.kind), []).append(
                (e.down["arrays"], e.down["raw"], e.up["arrays"], e.up["raw"])
            )
        return {key: sorted(value) for key, value in rounds.items()}

    recorded, replayed = per_round(recorder.exchanges), per_round(replay.exchanges)
    assert len(pattern) == 3  # two training rounds and the evaluation
    assert len(replayed) == len(recorded)
    for want, got in zip(recorded.values(), replayed.values(), strict=True):
        assert [(a, c) for a, _, c, _ in got] == [(a, c) for a, _, c, _ in want]
        for (a, down, c, up), (_, got_down, _, got_up) in zip(want, got, strict=True):
            # each zero array holds the message's bytes split evenly, rounded down
            assert down - a < got_down <= down
            assert up - c < got_up <= up


@pytest.mark.slow
def test_perf_quick_prints_every_row(capsys, no_data_warnings):
    perf.main(["--quick"])

    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"\| [1-5] \|", line)]
    items = [row.split("|")[1].strip() for row in rows]
    assert {item: items.count(item) for item in "12345"} == {
        "1": 2,
        "2": 3,
        "3": 12,
        "4": 1,
        "5": 2,
    }
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 7 and all(cells), row
    assert "machine:" in out and "command: python -m simulations.perf --quick" in out
    assert re.search(r"wall time: \d+ s", out)
