"""Drives a socket server with the Python reference's own client (eric-sse 0.6.0.3).

Usage: python reference_client.py SOCKET_PATH

Run by eric-socket/tests/unix_interop_python.rs against eric's Unix server. It uses
`eric_sse.clients.SocketClient` for one-shot commands and raw asyncio streams for `l` and
`w` (write the JSON command, write_eof, readline until EOF), as the reference's examples
do, and checks every answer. Expected error answers are computed with the reference's
own exception classes and Python's json module, so they are what the reference says.

Exits 0 when everything matches; 1 with a MISMATCH line naming the first difference.
"""

import asyncio
import json
import sys

from eric_sse.clients import SocketClient
from eric_sse.exception import (
    InvalidChannelException,
    InvalidListenerException,
    InvalidMessageFormat,
)

TIMEOUT = 10.0
CLOSED = "_eric_channel_closed"


class Mismatch(Exception):
    pass


checks = 0


def check(what, got, expected):
    global checks
    checks += 1
    if got != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {got!r}")


def check_true(what, condition, got):
    global checks
    checks += 1
    if not condition:
        raise Mismatch(f"{what}: got {got!r}")


def stream_line(event, data):
    """A stream line as the reference writes it: json.dumps of the adapted message."""
    return (json.dumps({"event": event, "retry": 5, "data": data}) + "\n").encode()


def json_error(text):
    """What the reference answers for input that is not JSON: repr of json's error."""
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return repr(error)
    raise AssertionError(f"{text!r} is valid JSON")


async def bounded(awaitable, what):
    try:
        return await asyncio.wait_for(awaitable, TIMEOUT)
    except asyncio.TimeoutError:
        raise Mismatch(f"timed out after {TIMEOUT} s: {what}") from None


async def raw(path, data):
    """One command by hand: write the bytes, write_eof, read the answer to EOF."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(data)
    writer.write_eof()
    answer = await bounded(reader.read(), f"the answer to {data!r}")
    writer.close()
    await writer.wait_closed()
    return answer.decode()


class Stream:
    """An `l` or `w` stream, read line by line as the reference's examples read it."""

    def __init__(self, reader, writer, command):
        self.reader = reader
        self.writer = writer
        self.command = command

    @classmethod
    async def open(cls, path, command):
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(json.dumps(command).encode())
        writer.write_eof()
        await writer.drain()
        return cls(reader, writer, command)

    async def line(self):
        line = await bounded(self.reader.readline(), f"a line of {self.command}")
        if not line:
            raise Mismatch(f"the stream {self.command} ended early")
        return line

    async def line_within(self, seconds):
        try:
            return await asyncio.wait_for(self.reader.readline(), seconds)
        except asyncio.TimeoutError:
            return None

    async def rest(self):
        """Every line until EOF."""
        lines = []
        while True:
            line = await bounded(self.reader.readline(), f"the end of {self.command}")
            if not line:
                return lines
            lines.append(line)

    async def close(self):
        self.writer.close()
        await self.writer.wait_closed()


async def serves(client):
    """After an error the server still creates channels."""
    channel = await client.create_channel()
    check_true("a `c` after an error answers a channel id", channel.isdigit(), channel)


async def main(path):
    client = SocketClient(path)

    # c and r
    channel = await client.create_channel()
    check_true("`c` answers a decimal id", channel.isdigit(), channel)
    empty_channel = await client.create_channel()
    check_true("a second `c` answers another id", empty_channel != channel, empty_channel)
    first = await client.register(channel)
    check_true("`r` answers a decimal id", first.isdigit(), first)
    second = await client.register(channel)
    check_true("a second `r` answers another id", second != first, second)

    # d and b
    answer = await client.send_payload(
        {"v": "d", "c": channel, "r": first, "t": "hello", "p": {"to": "you"}}
    )
    check("`d` answer", answer, "ack")
    check("`b` answer", await client.broadcast_message(channel, "news", "all"), "ack")
    check("`b` answer", await client.broadcast_message(channel, "num", 42), "ack")
    rich = {"n": [1, 2.5, None, True, False], "text": "h\u00e9llo \u2603 \U0001F600 \"q\""}
    check("`b` answer", await client.broadcast_message(channel, "rich", rich), "ack")
    answer = await client.send_payload({"v": "b", "c": channel, "t": "no-payload"})
    check("`b` without p", answer, "ack")

    # l: starts the listener and streams what was queued, in order, byte for byte.
    listened_first = await Stream.open(path, {"v": "l", "c": channel, "r": first})
    for event, data in [
        ("hello", {"to": "you"}),
        ("news", "all"),
        ("num", 42),
        ("rich", rich),
        ("no-payload", None),
    ]:
        check(f"`l` line for {event}", await listened_first.line(), stream_line(event, data))
    listened_second = await Stream.open(path, {"v": "l", "c": channel, "r": second})
    for event, data in [("news", "all"), ("num", 42), ("rich", rich), ("no-payload", None)]:
        check(f"`l` line for {event}", await listened_second.line(), stream_line(event, data))

    # Objects come back as JSON objects; parse, do not compare bytes (key order).
    unordered = {"zeta": 1, "alpha": {"y": 2, "b": [3]}}
    check("`b` answer", await client.broadcast_message(channel, "obj", unordered), "ack")
    line = await listened_first.line()
    check("a nested object payload", json.loads(line), {"event": "obj", "retry": 5, "data": unordered})
    line = await listened_second.line()
    check("a nested object payload", json.loads(line), {"event": "obj", "retry": 5, "data": unordered})

    # w: a new listener, started; broadcast until one reaches it, then it gets the rest.
    watched = await Stream.open(path, {"v": "w", "c": channel})
    pings = 0
    while True:
        pings += 1
        check("`b` answer", await client.broadcast_message(channel, "ping", pings), "ack")
        if await watched.line_within(0.05) is not None:
            break
        if pings > 200:
            raise Mismatch("the watcher never received a broadcast")
    for n in range(3):
        check("`b` answer", await client.broadcast_message(channel, "after", n), "ack")
    got = []
    while len(got) < 3:
        line = json.loads(await watched.line())
        if line["event"] != "ping":
            got.append(line)
    check(
        "the watcher's lines after it registered",
        got,
        [{"event": "after", "retry": 5, "data": n} for n in range(3)],
    )

    # Errors, each as the reference writes it, and the server goes on.
    check(
        "`r` on an unknown channel",
        await client.register("no-such-channel"),
        repr(InvalidChannelException("No channel with id no-such-channel")),
    )
    await serves(client)
    check(
        "`b` on an unknown channel",
        await client.broadcast_message("9999999", "t", 1),
        repr(InvalidChannelException("No channel with id 9999999")),
    )
    await serves(client)
    check(
        "`d` to an unknown listener",
        await client.send_payload({"v": "d", "c": empty_channel, "r": "7", "t": "t", "p": 1}),
        repr(InvalidListenerException("Invalid listener 7")),
    )
    await serves(client)
    for command in [{"v": "b", "c": channel}, {"c": channel}, {"v": "d", "c": channel, "r": first}]:
        check(
            f"the incomplete command {command}",
            await client.send_payload(command),
            repr(InvalidMessageFormat(json.dumps(command))),
        )
        await serves(client)
    for text in ["", "hello", "   ", '{"v": "b", "c": "1", "t": ', '{"v": "c"} x', "{v: 1}"]:
        check(f"the input {text!r}", await raw(path, text.encode()), json_error(text))
        await serves(client)
    # The reference answers nothing to an unknown verb; eric names it.
    answer = await client.send_payload({"v": "zap", "c": channel, "t": "t"})
    check_true(
        "an unknown verb is an InvalidMessageFormat naming it",
        answer.startswith("InvalidMessageFormat(") and "zap" in answer,
        answer,
    )
    await serves(client)
    # The reference answers `l` on an unknown listener with InvalidListenerException();
    # eric names the listener.
    unknown = await Stream.open(path, {"v": "l", "c": empty_channel, "r": "7"})
    lines = await unknown.rest()
    check("`l` on an unknown listener", lines, [repr(InvalidListenerException("Invalid listener 7")).encode()])
    await serves(client)

    # The end: a closed message ends every stream, as readline() until EOF sees it.
    check("`b` answer", await client.broadcast_message(channel, CLOSED, None), "ack")
    for name, stream in [("first", listened_first), ("second", listened_second), ("watcher", watched)]:
        lines = await stream.rest()
        check_true(f"the {name} stream ends with {CLOSED}", lines and lines[-1] == stream_line(CLOSED, None), lines)
        check_true(
            f"the {name} stream has only broadcasts before the end",
            all(json.loads(line)["event"] in ("ping", "after") for line in lines[:-1]),
            lines,
        )
        await stream.close()

    # An `l` listener outlives its stream: it gets what was queued meanwhile.
    answer = await client.send_payload({"v": "d", "c": channel, "r": first, "t": "again", "p": [1]})
    check("`d` answer", answer, "ack")
    answer = await client.send_payload({"v": "d", "c": channel, "r": first, "t": CLOSED})
    check("`d` answer", answer, "ack")
    again = await Stream.open(path, {"v": "l", "c": channel, "r": first})
    check("listening again", await again.rest(), [stream_line("again", [1]), stream_line(CLOSED, None)])
    await again.close()

    print(f"OK: {checks} checks passed against {path}")
    # Tell the Rust side which channel to inspect.
    print(f"channel {channel} listeners {first} {second}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: reference_client.py SOCKET_PATH")
    try:
        asyncio.run(main(sys.argv[1]))
    except Mismatch as mismatch:
        print(f"MISMATCH: {mismatch}", file=sys.stderr)
        sys.exit(1)
