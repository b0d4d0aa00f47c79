"""Console output of simulations: one line per log record, one progress bar.

Simulation layer. Flower's logger (``"flwr"``) has a console handler of its
own and also passes its records on to the root logger, where Hydra puts its
console and file handlers, so under Hydra every Flower line would be printed
twice. :func:`use_root_handlers` takes Flower's console handler away, so each
record is printed once by the root's console handler and also reaches Hydra's
log file. :class:`TqdmHandler` is that console handler for Hydra's job logging
(``conf/hydra/job_logging/fedgmmtree.yaml``): it prints above the progress
bar instead of through it. :class:`RoundProgress` is the bar.
"""

import logging
from typing import TextIO

from flwr.supercore.logger import ConsoleHandler
from tqdm.auto import tqdm

FLOWER_LOGGER = "flwr"


class TqdmHandler(logging.StreamHandler):
    """A console handler that writes through ``tqdm.write``.

    Parameters
    ----------
    stream : file object, optional
        Where lines go (standard error when None).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)

    def emit(self, record: logging.LogRecord) -> None:
        """Write one formatted record above any progress bar."""
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def use_root_handlers(level: int = logging.INFO) -> None:
    """Print Flower's records only through the root logger's handlers.

    Takes Flower's own console handler off the ``"flwr"`` logger when the root
    logger has a handler, and sets the ``"flwr"`` logger to ``level`` (records
    that propagate reach the root's handlers whatever the root's level is).
    """
    flower = logging.getLogger(FLOWER_LOGGER)
    flower.setLevel(level)
    if not logging.getLogger().handlers:
        return
    for handler in list(flower.handlers):
        if isinstance(handler, ConsoleHandler):
            flower.removeHandler(handler)
    flower.propagate = True


class RoundProgress(logging.Handler):
    """A progress bar over the rounds of a strategy.

    The strategy logs one line per round after it folds the round's replies
    into its ``grower.history``; this handler sits on Flower's logger and moves
    the bar whenever that history has grown, showing the active nodes, the
    leaves and the mean log-likelihood of the last round. Use it as a context
    manager around the run.

    Parameters
    ----------
    strategy : FedGMMTree
        The strategy being run (anything with ``grower.history``).
    disable : bool or None, default=None
        True hides the bar; None hides it when the output is not a terminal.
    file : file object, optional
        Where the bar is drawn (standard error when None).
    """

    def __init__(self, strategy, disable: bool | None = None, file=None) -> None:
        super().__init__()
        self.strategy = strategy
        self.rounds = 0
        self.bar = tqdm(
            desc="FedGMMTree",
            unit=" round",
            disable=disable,
            file=file,
            dynamic_ncols=True,
        )

    def emit(self, record: logging.LogRecord) -> None:
        """Move the bar to the rounds in the strategy's history."""
        history = self.strategy.grower.history
        if len(history) <= self.rounds:
            return
        last = history[-1]
        self.bar.set_postfix(
            active=int(last["active"]),
            leaves=int(last["leaves"]),
            loglik=f"{float(last['mean_loglik']):.4g}",
            refresh=False,
        )
        self.bar.update(len(history) - self.rounds)
        self.rounds = len(history)

    def __enter__(self) -> "RoundProgress":
        logging.getLogger(FLOWER_LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc_info) -> None:
        logging.getLogger(FLOWER_LOGGER).removeHandler(self)
        self.bar.close()
