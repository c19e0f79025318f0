"""A TCP proxy in front of a real service that can turn into a black hole: connections stay
open but nothing gets through, either way (a half-open connection, a broker that stopped
reading). What a client then waits on is what it waits on in production."""

import contextlib
import socket
import threading
from collections.abc import Iterator

from devstack.stack import free_port


class BlackholeProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.blackholed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def blackhole(self) -> None:
        """From now on every byte either way is swallowed; sockets stay open."""
        self.blackholed.set()

    def resume(self) -> None:
        """Forward again, for new connections; the swallowed ones are reset (their streams lost
        bytes and cannot be trusted)."""
        with self._lock:
            doomed, self._sockets = self._sockets, []
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                sock.close()
        self.blackholed.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.resume()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self.blackholed.is_set():
                    sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def blackhole_proxy(target_host: str, target_port: int) -> Iterator[BlackholeProxy]:
    proxy = BlackholeProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
