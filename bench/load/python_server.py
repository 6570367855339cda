"""The reference's socket server (eric-sse 0.6.0.3), with its `l` bug worked around.

Usage: python python_server.py SOCKET_PATH

eric-sse 0.6.0.3 never starts the listener on `l`: a listener registered with `r` is not
running, so `message_stream` ends at once and `l` answers nothing. Later reference
versions start it, and so does eric. This wrapper starts the listener when its stream is
opened, then hands over to the reference's own `message_stream`: the measured path
(`deliver_next`, `adapt`, `json.dumps`, the writes) is the reference's, unchanged.

Everything else is `SocketServer.start` as shipped, signals included.
"""

import sys

from eric_sse.entities import AbstractChannel
from eric_sse.servers import SocketServer

_message_stream = AbstractChannel.message_stream


async def message_stream_started(self, listener):
    listener.start_sync()
    return await _message_stream(self, listener)


AbstractChannel.message_stream = message_stream_started

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python_server.py SOCKET_PATH")
    SocketServer.start(sys.argv[1])
