"""An abstract locust User that owns one `YClient` and reports through locust's request event.

Each user joins a room and takes a role from its number: users fill rooms in order
(``--users-per-room`` each, ``--rooms`` rooms, then round again), and the first
``--writers-per-room`` users of a room are writers. Writers edit at ``--edit-rate``
edits/s with ``--payload-bytes`` of filler and move their cursor (awareness) with each
edit; everyone announces itself once in awareness and receives all the time.

Request events (request_type ``"YJS"``): ``connect`` (until synced), ``edit`` (to make
and send one update), ``delivery`` (from a writer's edit to this user seeing it: the
end-to-end latency, one per receiver), ``closed`` (the server closed the connection).
Locust's statistics, CSV and UI therefore show delivery latency percentiles directly.
"""

from __future__ import annotations

import itertools
from typing import Any

import gevent
from locust import User, events
from locust.exception import StopUser

from ysync.loadtest.protocol import ConnectionClosed, YClient

REQUEST_TYPE = "YJS"
_numbers = itertools.count()


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("ysync load", "the shape of the Yjs load")
    group.add_argument("--rooms", type=int, default=10, help="rooms to spread users over")
    group.add_argument("--users-per-room", type=int, default=5, help="users in each room")
    group.add_argument("--writers-per-room", type=int, default=1, help="users per room who edit")
    group.add_argument("--edit-rate", type=float, default=2.0, help="edits/s of each writer")
    group.add_argument("--payload-bytes", type=int, default=100, help="filler bytes per edit")
    group.add_argument("--room-prefix", default="locust", help="room names are PREFIX-N")


class YjsUser(User):
    """Connects on start, receives in its own greenlet; subclasses add tasks (see locustfile)."""

    abstract = True
    host = "ws://127.0.0.1:1234"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        self.number = next(_numbers)
        rooms = max(1, getattr(options, "rooms", 10))
        per_room = max(1, getattr(options, "users_per_room", 5))
        self.room_index = (self.number // per_room) % rooms
        self.is_writer = self.number % per_room < getattr(options, "writers_per_room", 1)
        self.edit_rate = max(0.001, getattr(options, "edit_rate", 2.0))
        self.payload_bytes = getattr(options, "payload_bytes", 100)
        prefix = getattr(options, "room_prefix", "locust")
        worker = getattr(environment.runner, "worker_index", None)
        if worker is not None:  # distributed: each worker's users fill their own rooms
            prefix = f"{prefix}-w{worker}"
        self.client = YClient(self.host, f"{prefix}-{self.room_index}", self._report)
        self._receiver: gevent.Greenlet | None = None

    def _report(
        self, name: str, response_time: float, length: int, exception: BaseException | None
    ) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=response_time,
            response_length=length,
            exception=exception,
            context={"room": self.client.room, "writer": self.is_writer},
        )

    def on_start(self) -> None:
        try:
            self.client.connect()
        except Exception as exc:
            raise StopUser() from exc
        self.client.set_awareness({"user": {"name": f"locust-{self.number}"}})
        self._receiver = gevent.spawn(self._receive_forever)

    def on_stop(self) -> None:
        if self._receiver is not None:
            self._receiver.kill(block=False)
        self.client.close()

    def _receive_forever(self) -> None:
        try:
            while True:
                self.client.receive(timeout=None)
        except ConnectionClosed as exc:
            if exc.rcvd is None or exc.rcvd.code != 1000:
                self._report("closed", 0, 0, exc)

    def edit(self) -> None:
        """One timed edit, and the cursor moves with it."""
        self.client.edit(self.payload_bytes)
        self.client.set_awareness(
            {"user": {"name": f"locust-{self.number}"}, "cursor": {"at": self.client.seq}}
        )

    def wait_time(self) -> float:
        # Writers edit at --edit-rate; readers only receive (in their own greenlet).
        return 1 / self.edit_rate if self.is_writer else 1.0
