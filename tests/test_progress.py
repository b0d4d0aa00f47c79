"""Tests of simulations.progress: one console line per record, a bar over rounds."""

import io
import logging
from types import SimpleNamespace

import pytest
from flwr.supercore.logger import ConsoleHandler

from simulations.progress import RoundProgress, TqdmHandler, use_root_handlers


@pytest.fixture
def flower_logger():
    logger = logging.getLogger("flwr")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


def test_use_root_handlers_takes_flowers_console_handler_away(flower_logger):
    root = logging.getLogger()
    stream = io.StringIO()
    console = TqdmHandler(stream)
    root.addHandler(console)
    try:
        use_root_handlers()
        flower_logger.info("one line")
    finally:
        root.removeHandler(console)

    assert not any(isinstance(h, ConsoleHandler) for h in flower_logger.handlers)
    assert flower_logger.level == logging.INFO
    assert stream.getvalue() == "one line\n"


def test_round_progress_follows_the_strategy_history(flower_logger):
    history = []
    strategy = SimpleNamespace(grower=SimpleNamespace(history=history))
    out = io.StringIO()
    flower_logger.setLevel(logging.INFO)

    with RoundProgress(strategy, disable=False, file=out) as progress:
        flower_logger.info("before any round")
        assert progress.rounds == 0
        for r in (1, 2, 3):
            history.append(
                {"round": r, "active": 2, "leaves": r, "mean_loglik": -4.5 + r}
            )
            flower_logger.info("[ROUND %d]", r)
        assert progress.rounds == 3

    assert progress not in flower_logger.handlers
    assert "3round" in out.getvalue().replace(" ", "")
    assert "leaves=3" in out.getvalue()
    assert "loglik=-1.5" in out.getvalue()
