"""The deploy tests' PostgreSQL: a fresh home's embedded server with a `dagster` database, reached over TCP."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.helpers.homes import own_fraud_home


class UnixSocketProxy:
    """127.0.0.1:port → the embedded server's Unix socket: the instance reaches PostgreSQL by host and port, as it
    reaches RDS (pgserver listens on a socket only)."""

    def __init__(self, socket_path: Path):
        self.socket_path = str(socket_path)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.socket_path)
            self.connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()
        for sock in self.connections:
            sock.close()


@pytest.fixture(scope="module")
def postgres():
    """A fresh home's embedded PostgreSQL behind a TCP proxy, as RDS is: only the platform's database exists (the
    image's entrypoint creates Dagster's)."""
    from sqlalchemy.engine import make_url

    from fraud.core.settings import Settings
    from fraud.db.engine import database_url

    with own_fraud_home("fraud-deploy-") as home:
        settings = Settings()
        url = make_url(database_url(settings))  # starts the embedded server
        socket_dir = Path(url.query["host"])
        socket_path = socket_dir / f".s.PGSQL.{url.port or 5432}"
        proxy = UnixSocketProxy(socket_path)
        try:
            yield {"home": home, "port": proxy.port, "username": url.username, "url": url}
        finally:
            proxy.close()
