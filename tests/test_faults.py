"""Tests of simulations.faults and simulations.federation: seeded client faults."""

import logging

import numpy as np
import pytest

from fedgmmtree import FederationError
from simulations.config import Config, to_run_config
from simulations.faults import DROPOUT, LATE, ClientFaults
from simulations.federation import run_federation


def tiny_run_config(**overrides):
    cfg = Config()
    cfg.dataset.name = "blobs"
    cfg.dataset.n_samples = 150
    cfg.dataset.n_classes = 3
    cfg.strategy.n_init = 1
    cfg.strategy.max_iter = 30
    cfg.strategy.tol = 1e-2
    cfg.simulation.num_clients = 3
    run_config = to_run_config(cfg)
    run_config.update(overrides)
    return run_config


@pytest.mark.parametrize(
    ("dropout", "late", "message"),
    [
        (-0.1, 0.0, r"simulation.dropout must be a share in \[0, 1\], but got -0.1"),
        (0.0, 1.5, r"simulation.late must be a share in \[0, 1\], but got 1.5"),
        (0.6, 0.5, r"dropout \+ simulation.late must be at most 1"),
    ],
)
def test_faults_reject_shares_out_of_range(dropout, late, message):
    with pytest.raises(ValueError, match=message):
        ClientFaults(dropout, late)


def test_faults_reject_a_negative_seed():
    with pytest.raises(ValueError, match="seed must be >= 0, but got -1"):
        ClientFaults(0.1, 0.0, seed=-1)


def test_faults_are_seeded_and_hit_their_shares():
    faults = ClientFaults(dropout=0.2, late=0.1, seed=3)
    draws = [
        faults.fault(r, a, c)
        for r in range(1, 201)
        for a in range(2)
        for c in range(10)
    ]

    again = [
        faults.fault(r, a, c)
        for r in range(1, 201)
        for a in range(2)
        for c in range(10)
    ]
    assert draws == again
    assert np.mean([d == DROPOUT for d in draws]) == pytest.approx(0.2, abs=0.03)
    assert np.mean([d == LATE for d in draws]) == pytest.approx(0.1, abs=0.03)


def test_a_new_attempt_of_a_round_draws_again():
    faults = ClientFaults(dropout=0.5, seed=0)
    first = [faults.fault(4, 0, c) for c in range(40)]
    retry = [faults.fault(4, 1, c) for c in range(40)]

    assert first != retry


def test_no_faults_by_default():
    faults = ClientFaults()

    assert not faults.active
    assert {faults.fault(r, 0, c) for r in range(20) for c in range(20)} == {None}


def test_dropouts_and_late_replies_leave_clients_out_of_rounds(caplog):
    run_config = tiny_run_config(**{"min-replies": 0.25})
    faults = ClientFaults(dropout=0.2, late=0.2, seed=1)

    with caplog.at_level(logging.INFO, logger="flwr"):
        logging.getLogger("flwr").setLevel(logging.INFO)
        strategy, results = run_federation(run_config, faults=faults)

    clients = [r["clients"] for r in results["history"]]
    assert min(clients) < 3 and max(clients) == 3
    assert "dropped out of round" in caplog.text
    assert "answered after the deadline (simulated)" in caplog.text
    assert results["ari"] > 0.9


def test_faulty_runs_repeat_bit_for_bit():
    run_config = tiny_run_config(**{"min-replies": 0.25})
    faults = ClientFaults(dropout=0.3, late=0.1, seed=5)

    first = run_federation(run_config, faults=faults)[0].model()
    second = run_federation(run_config, faults=faults)[0].model()
    a, b = first.to_arrays(), second.to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_too_many_late_clients_stop_the_run():
    run_config = tiny_run_config(**{"max-retries": 1})

    with pytest.raises(FederationError, match="too few clients answered"):
        run_federation(run_config, faults=ClientFaults(late=1.0))


def test_run_federation_rejects_an_unknown_engine():
    with pytest.raises(ValueError, match="engine must be one of"):
        run_federation(tiny_run_config(), engine="dask")
