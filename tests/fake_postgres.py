"""A fake PostgreSQL server on loopback that asks every client for a clear-text password.

It records every message a client sends (the startup message names the user and the
database; a ``p`` message carries the password), so a test can show what a design file
made evalkit send to a host it named. It speaks only as much of the protocol as that
needs: it declines TLS and GSS encryption, asks for a password, and refuses the login.
"""

from __future__ import annotations

import socket
import struct
import threading

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104


class FakePostgres:
    """``with FakePostgres() as server:`` listens on 127.0.0.1:``server.port``; ``server.received`` holds the bytes."""

    def __init__(self):
        self.received: list[bytes] = []
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self._socket.settimeout(0.1)
        self._stop = threading.Event()
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    @property
    def passwords(self) -> list[bytes]:
        """The password messages received (each ``p`` + length + password + NUL)."""
        return [message for message in self.received if message.startswith(b"p")]

    @property
    def everything(self) -> bytes:
        return b"\n".join(self.received)

    def _read(self, connection, size: int) -> bytes:
        data = b""
        while len(data) < size:
            part = connection.recv(size - len(data))
            if not part:
                raise EOFError
            data += part
        return data

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:  # closed: the test is over
                return
            with connection:
                connection.settimeout(10)
                try:
                    self._session(connection)
                except (EOFError, OSError):
                    pass

    def _session(self, connection) -> None:
        while True:
            length, code = struct.unpack("!ii", self._read(connection, 8))
            body = self._read(connection, length - 8)
            if code in (_SSL_REQUEST, _GSS_REQUEST):
                connection.sendall(b"N")  # no encryption: go on in clear
                continue
            self.received.append(struct.pack("!i", code) + body)  # startup: user, database, options
            connection.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            kind = self._read(connection, 1)
            (size,) = struct.unpack("!i", self._read(connection, 4))
            self.received.append(kind + struct.pack("!i", size) + self._read(connection, size - 4))
            fields = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
            connection.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)
            return
