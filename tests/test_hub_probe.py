"""The Hub reachability probe's thread never raises, whatever the connection attempt does."""

from __future__ import annotations

import threading

from mmdemo.serving import hub


def test_a_probe_that_gets_no_socket_or_an_error_says_unreachable_without_a_thread_error(monkeypatch):
    monkeypatch.delenv("MMDEMO_OFFLINE", raising=False)
    raised: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    for connect in (lambda *a, **k: None, lambda *a, **k: (_ for _ in ()).throw(RuntimeError("odd"))):
        monkeypatch.setattr(hub.socket, "create_connection", connect)
        hub.forget_reachability()
        assert hub.hub_reachable() is False
    hub.forget_reachability()
    assert raised == []
