"""A TCP forwarder on loopback between the clients and a real Redis, for the two faults Redis
itself cannot be made to give: a connection reset (RST) while a request is in flight, and a
switch of the address behind one name (what Sentinel does on a failover). Bytes pass unchanged."""

from __future__ import annotations

import socket
import struct
import threading


class Proxy:
    """``127.0.0.1:port`` forwards each new connection to ``target`` (a port, changed by
    ``retarget``); ``reset_next()`` makes the next request from a client reset its connection
    instead of reaching Redis."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.resets = 0
        self._reset = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def retarget(self, target: int) -> None:
        """New connections go to ``target`` from now on (open ones stay where they are)."""
        self.target = target

    def reset_next(self) -> None:
        self._reset.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        reset = False
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client and self._reset.is_set():
                    self._reset.clear()
                    self.resets += 1
                    # SO_LINGER 0: close() sends RST, the client reads ECONNRESET
                    source.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
                    reset = True
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                if not (reset and sock is source):  # (a shutdown would send FIN, not RST)
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the other direction's recv
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass
