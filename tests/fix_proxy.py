"""A TCP proxy between a client and PostgreSQL that can fail the way networks fail.

psycopg's own suite tests network cuts with a proxy like this. Modes:
- `cut()`: reset every open connection (RST both ways), as a crashed NAT or a firewall would;
  new connections are forwarded again at once.
- `blackhole()`: keep every socket open but swallow all bytes both ways, and accept new
  connections into the same void: no FIN, no RST, nothing, as a dead path behind a NAT or a
  load balancer looks from both ends.
- `delay(seconds)`: forward every chunk after a pause.
- `heal()`: forward again; connections that were blackholed are reset (their bytes are gone,
  so their streams could never resume).
"""

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import pytest

FORWARD, BLACKHOLE = "forward", "blackhole"


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    blackholed: bool = False
    closed: bool = False

    def reset(self) -> None:
        """Close both sockets with an RST (linger 0) instead of a FIN."""
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.server):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@dataclass
class TcpProxy:
    """Listens on 127.0.0.1:`port` and forwards to 127.0.0.1:`target_port`."""

    target_port: int
    mode: str = FORWARD
    latency: float = 0.0
    links: list[_Link] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            links, self.links = self.links, []
        for link in links:
            link.reset()

    def blackhole(self) -> None:
        with self.lock:
            self.mode = BLACKHOLE
            for link in self.links:
                link.blackholed = True

    def delay(self, seconds: float) -> None:
        self.latency = seconds

    def heal(self) -> None:
        with self.lock:
            self.mode, self.latency = FORWARD, 0.0
            dead = [link for link in self.links if link.blackholed]
            self.links = [link for link in self.links if not link.blackholed]
        for link in dead:
            link.reset()

    def close(self) -> None:
        self.running = False
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                link = _Link(client, server, blackholed=self.mode == BLACKHOLE)
                self.links.append(link)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(link, source, target),
                                 name="proxy-pump", daemon=True).start()

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket) -> None:
        while not link.closed:
            try:
                chunk = source.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            if link.blackholed:
                continue  # swallowed: the sender's kernel saw it delivered
            if self.latency:
                time.sleep(self.latency)
            try:
                target.sendall(chunk)
            except OSError:
                break
        if not link.blackholed:
            # A clean end on one side (FIN) or an error: pass the closing on, like a router.
            link.reset()


@pytest.fixture
def proxy(pg_server):
    """A TcpProxy in front of the test PostgreSQL server; closed after the test."""
    tcp_proxy = TcpProxy(pg_server.state().port)
    yield tcp_proxy
    tcp_proxy.close()
