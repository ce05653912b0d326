"""The internals of uvicorn and websockets that ysync relies on, checked by name.

`server/ws_protocol.py` is a uvicorn WebSocket protocol class and
`server/ws_frames.py` unmasks frames with websockets' C helper. Neither is
public API, so pyproject.toml pins upper bounds; when a new release changes one
of these, this module fails and says exactly what moved, instead of every
WebSocket test failing somewhere deep in a handshake.
"""

from __future__ import annotations

import inspect
import os

import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.server import Server, ServerState
from websockets.frames import apply_mask

from ysync.server.ws_protocol import YsyncWebSocketProtocol


def test_server_state_has_what_the_protocol_registers_itself_in() -> None:
    state = ServerState()
    assert isinstance(state.connections, set), "ServerState.connections is no longer a set"
    assert isinstance(state.tasks, set), "ServerState.tasks is no longer a set"
    assert isinstance(state.default_headers, list), "ServerState.default_headers moved"


def test_config_has_what_the_protocol_reads() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        pass

    config = Config(app, ws=YsyncWebSocketProtocol, ws_max_size=1234)
    assert config.loaded is False
    config.load()
    for name in ("ws_max_size", "asgi_version", "root_path", "loaded_app", "ws_protocol_class"):
        assert hasattr(config, name), f"uvicorn Config has no {name!r} any more"
    assert config.ws_max_size == 1234
    assert config.ws_protocol_class is YsyncWebSocketProtocol


@pytest.mark.parametrize(
    "protocol",
    [httptools_impl.HttpToolsProtocol, h11_impl.H11Protocol],
    ids=["httptools", "h11"],
)
def test_http_protocols_hand_the_upgrade_over_as_the_protocol_expects(protocol: type) -> None:
    source = inspect.getsource(protocol.handle_websocket_upgrade)
    for needed in (
        "self.ws_protocol_class(",
        "config=self.config",
        "server_state=self.server_state",
        "app_state=self.app_state",
        "protocol.connection_made(self.transport)",
        "protocol.data_received(",
        "self.transport.set_protocol(protocol)",
    ):
        assert needed in source, f"uvicorn's {protocol.__name__} no longer does {needed!r}"
    signature = inspect.signature(YsyncWebSocketProtocol)
    assert {"config", "server_state", "app_state"} <= set(signature.parameters)


def test_server_shutdown_asks_each_connection_to_shut_down() -> None:
    assert "connection.shutdown()" in inspect.getsource(Server.shutdown), (
        "uvicorn's Server.shutdown no longer calls connection.shutdown()"
    )
    assert callable(YsyncWebSocketProtocol.shutdown)


def test_apply_mask_unmasks_as_rfc_6455_says() -> None:
    data, mask = os.urandom(1000), os.urandom(4)
    expected = bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))
    assert apply_mask(data, mask) == expected


def test_uvicorn_is_within_the_pinned_range() -> None:
    major, minor = (int(part) for part in uvicorn.__version__.split(".")[:2])
    assert (major, minor) < (0, 55), "update pyproject's bound after checking this module"
