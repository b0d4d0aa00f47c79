"""Simulated clients that drop out of a round or answer late, seeded.

Simulation layer. Two kinds of fault, drawn per (client, round, attempt):

- dropout: the client fails while it works on the round: it sends an error
  reply instead of its statistics, as a client whose ClientApp crashed does.
- late: the client answers after the round's deadline. The server-side grid
  discards its reply at once, as Flower's grid ignores replies that come after
  its timeout, so a sweep does not wait the timeout out. The client did its
  work; the bytes it sent are not counted, since the server never read them.

One uniform draw from ``(seed, server round, attempt, partition id)`` decides:
below ``dropout`` the client drops out, below ``dropout + late`` it is late.
When the strategy sends a round's step again, that is a new attempt with new
draws. The same client app wrapper and grid wrapper run on both engines, so
they fail the same clients.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from logging import INFO

import numpy as np
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore import log

DROPOUT, LATE = "dropout", "late"

# Mixed into every draw so that faults are independent of other streams
# seeded with the same simulation seed.
_FAULT_STREAM = 7

ATTEMPT_KEY = "fault-attempt"

# Error code of the reply of a client that drops out (Flower's own codes are
# small; this one is out of their way).
DROPOUT_CODE = 900


@dataclass(frozen=True)
class ClientFaults:
    """Seeded shares of clients that drop out of a round or answer late.

    Parameters
    ----------
    dropout : float, default=0.0
        Share of (client, round) pairs in which the client fails.
    late : float, default=0.0
        Share of (client, round) pairs in which the client answers after the
        deadline.
    seed : int, default=0
        Seed of the draws, >= 0.
    """

    dropout: float = 0.0
    late: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dropout", "late"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"simulation.{name} must be a share in [0, 1], but got {value!r}."
                )
        if self.dropout + self.late > 1.0:
            raise ValueError(
                "simulation.dropout + simulation.late must be at most 1, but got "
                f"{self.dropout!r} + {self.late!r}."
            )
        if self.seed < 0:
            raise ValueError(f"The fault seed must be >= 0, but got {self.seed!r}.")

    @property
    def active(self) -> bool:
        """Whether any client may fail."""
        return self.dropout > 0.0 or self.late > 0.0

    def fault(self, server_round: int, attempt: int, partition_id: int) -> str | None:
        """``"dropout"``, ``"late"`` or None for one client in one attempt."""
        if not self.active:
            return None
        entropy = [_FAULT_STREAM, self.seed, server_round, attempt, partition_id]
        draw = np.random.default_rng(entropy).random()
        if draw < self.dropout:
            return DROPOUT
        if draw < self.dropout + self.late:
            return LATE
        return None


def unreliable_client_app(client_app: ClientApp, faults: ClientFaults) -> ClientApp:
    """A ClientApp that runs ``client_app`` but drops out of rounds as drawn.

    Only ``train`` messages fail; ``evaluate`` messages always reach
    ``client_app``.
    """
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        """Fail as drawn, otherwise run the wrapped train handler."""
        config = msg.content["config"]
        server_round = int(config["server-round"])
        attempt = int(config.get(ATTEMPT_KEY, 0))
        partition_id = int(context.node_config["partition-id"])
        if faults.fault(server_round, attempt, partition_id) == DROPOUT:
            reason = (
                f"client {partition_id} dropped out of round {server_round} "
                f"(simulated: simulation.dropout={faults.dropout})"
            )
            return Message(Error(code=DROPOUT_CODE, reason=reason), reply_to=msg)
        return client_app(msg, context)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        """Run the wrapped evaluate handler."""
        return client_app(msg, context)

    return app


class UnreliableGrid(Grid):
    """A Grid that numbers the attempts of each round and drops late replies.

    Every other call goes to the wrapped grid unchanged.

    Parameters
    ----------
    grid : Grid
        Flower's grid of the running simulation, or an in-process one.
    faults : ClientFaults
    """

    def __init__(self, grid: Grid, faults: ClientFaults) -> None:
        self.grid = grid
        self.faults = faults
        self._attempts: dict[int, int] = {}

    def set_run(self, run) -> None:
        """Set the run of the wrapped grid."""
        self.grid.set_run(run)

    @property
    def run(self):
        """The run of the wrapped grid."""
        return self.grid.run

    def create_message(self, *args, **kwargs) -> Message:
        """Build a message with the wrapped grid."""
        return self.grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        """Node ids of the wrapped grid."""
        return self.grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Push with the wrapped grid (no faults: use :meth:`send_and_receive`)."""
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Pull with the wrapped grid."""
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Send, receive, and leave out the replies drawn as late."""
        messages = list(messages)
        train = [m for m in messages if m.metadata.message_type.startswith("train")]
        if not train or not self.faults.active:
            return self.grid.send_and_receive(messages, timeout=timeout)

        # Each new send of a round's step is one more attempt of that round.
        server_round = int(train[0].content["config"]["server-round"])
        attempt = self._attempts.get(server_round, 0)
        self._attempts[server_round] = attempt + 1
        for msg in train:
            msg.content["config"][ATTEMPT_KEY] = attempt

        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        kept, late = [], []
        for reply in replies:
            client = _client_of(reply)
            if (
                client is not None
                and self.faults.fault(server_round, attempt, client) == LATE
            ):
                late.append(client)
                continue
            kept.append(reply)
        if late:
            log(
                INFO,
                "Round %d: clients %s answered after the deadline (simulated); "
                "their replies are left out",
                server_round,
                sorted(late),
            )
        return kept


def _client_of(reply: Message) -> int | None:
    """Partition id a train reply names, None for an error or other reply."""
    if reply.has_error() or "client" not in reply.content:
        return None
    return int(reply.content["client"]["client-key"])
