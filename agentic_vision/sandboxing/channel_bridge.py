"""An engine's stream that is not a plain socket, as one.

A session's channel needs a plain socket: sends that do not block
(MSG_DONTWAIT), poll() for room, shutdown().  A paramiko channel (ssh://)
has none of these, and a TLS socket refuses send flags, so two threads pump
between the stream and one end of a socketpair, and the session gets the
other end.  A sandbox that stops reading fills the pair's buffer, and the
session's writes then wait within their deadline, as over any socket.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable

CHUNK = 256 * 1024


def as_socket(channel, shut_write: Callable[[], None] | None = None) -> socket.socket:
    """The session's end of a socketpair whose other end is pumped to and from channel.

    ``shut_write`` half-closes channel once the session closed its writing end
    (TLS has no half-close that keeps reading: None).
    """
    ours, theirs = socket.socketpair()
    channel.settimeout(None)  # the pumps wait as long as the session lasts

    def up() -> None:  # the session -> the engine's stream
        try:
            while data := theirs.recv(CHUNK):
                channel.sendall(data)
            if shut_write is not None:
                shut_write()  # the session closed its writing end (stdin)
        except OSError:
            pass

    def down() -> None:  # the engine's stream -> the session
        try:
            while data := channel.recv(CHUNK):
                theirs.sendall(data)
        except OSError:
            pass
        try:
            theirs.shutdown(socket.SHUT_WR)  # the session reads the end of the stream
        except OSError:
            pass
        # The stream ended (container gone) or the session closed its end (killed):
        # once the session stops writing too, nothing uses either side.
        writer.join()
        channel.close()
        theirs.close()

    writer = threading.Thread(target=up, name="engine-stream-up", daemon=True)
    writer.start()
    threading.Thread(target=down, name="engine-stream-down", daemon=True).start()
    return ours
