#!/usr/bin/env python3
"""Soak test of `eric serve`: mixed traffic for a set time, resources sampled over time.

Starts `eric serve` itself (a Unix socket and HTTP on 127.0.0.1, in a temporary
directory), then for --seconds runs, all at once:

- publishers: broadcasts on many channels, alternately over HTTP (one keep-alive
  connection) and the socket (`b`), each channel carrying a sequence number that only
  grows when the server acknowledged the message;
- well-behaved subscribers, which join (`/watch`), leave, and resume (reconnect with
  Last-Event-ID, on `/watch` and on a named listener's `/stream`): each checks that it got
  every message of its channel from the point it joined, in order, with no gap and no
  duplicate, across its reconnections;
- slow readers (a few bytes now and then; the server ends them as too slow and they
  resume from the log) and stalled readers (never read, then leave), over HTTP and the
  socket (`w`);
- garbage: random bytes, half-written requests, malformed commands, on both listeners;
- CLI calls: the `eric` binary's client subcommands (channel create/list/rm, listener
  add/rm, dispatch, broadcast, listen --count).

Every --interval seconds it samples the server's RSS, open fds, threads and CPU time
from /proc/PID and writes them as CSV (samples.csv), with a JSON summary (summary.json)
and a plot of RSS and fds over time (soak.svg), into --out.

It exits 1 if a well-behaved subscriber missed, doubled or reordered a message, if the
server died or logged a panic, or if growth after warm-up exceeds --max-growth (5 %):
the RSS and thread count at the end (median of the last tenth of the samples) against
the same just after warm-up, and the fds the server holds with every client gone,
against those before any client came (a small allowance of 2).

A Python script rather than a Rust crate: it drives the real binary and its
subcommands as a user would, needs nothing but python3 in CI, and its own speed does
not matter (the load is moderate on purpose: what is checked is what stays and grows).
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


class Failures:
    """Integrity failures seen by any worker (bounded list, full count)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.first = []

    def add(self, what):
        with self.lock:
            self.count += 1
            if len(self.first) < 20:
                self.first.append(what)
                log("FAILURE:", what)


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}

    def add(self, name, n=1):
        with self.lock:
            self.values[name] = self.values.get(name, 0) + n


class Server:
    def __init__(self, eric, workdir, extra):
        self.eric = eric
        self.socket = os.path.join(workdir, "eric.sock")
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.http = f"127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "serve.log")
        self.log_file = open(self.log_path, "wb")
        cmd = [eric, "serve", "--socket", self.socket, "--http", self.http,
               "--log-level", "warn"] + extra
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        deadline = time.time() + 30
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"eric serve did not start: see {self.log_path}")
            time.sleep(0.05)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("eric serve's HTTP port does not answer")
                time.sleep(0.05)

    def cli(self, *args, timeout=30):
        return subprocess.run([self.eric, "--socket", self.socket, "--http", self.http] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def command(self, text):
        """One socket command: written whole, half-closed; the answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.socket)
            s.sendall(text.encode())
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode


def proc_sample(pid):
    """RSS (KiB), open fds, threads and CPU seconds (user + system) of `pid`."""
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    rss_kb = int(status["VmRSS"].split()[0])
    threads = int(status["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks
    return rss_kb, fds, threads, cpu_s


class SseReader:
    """A raw HTTP/1.1 event-stream client: parses `id:`, `event:`, `data:` lines."""

    def __init__(self, port, path, last_event_id=None, timeout=15, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            # Before connecting, so that the window the server sees stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        headers = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        if last_event_id:
            headers += f"Last-Event-ID: {last_event_id}\r\n"
        self.sock.sendall((headers + "\r\n").encode())
        self.buf = b""
        self.status = None
        self.chunked = False
        self.raw = b""  # de-chunked body bytes not parsed yet
        self.ended = False
        self._read_head()
        self.event = {}

    def _fill(self, max_bytes=65536):
        data = self.sock.recv(max_bytes)
        if not data:
            self.ended = True
        self.buf += data
        return bool(data)

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("no response head")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode(errors="replace").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "transfer-encoding" and "chunked" in value.lower():
                self.chunked = True

    def _dechunk(self):
        if not self.chunked:
            self.raw += self.buf
            self.buf = b""
            return
        while True:
            if b"\r\n" not in self.buf:
                return
            size_line, rest = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.ended = True
                self.buf = b""
                return
            if len(rest) < size + 2:
                return
            self.raw += rest[:size]
            self.buf = rest[size + 2:]

    def events(self, max_bytes=65536):
        """Reads once (blocking) and returns the complete events read so far; [] at the end."""
        if self.ended:
            return None
        try:
            got = self._fill(max_bytes)
        except socket.timeout:
            return []
        self._dechunk()
        out = []
        while b"\n" in self.raw:
            line, self.raw = self.raw.split(b"\n", 1)
            line = line.rstrip(b"\r").decode(errors="replace")
            if line == "":
                if "data" in self.event or "event" in self.event:
                    out.append(self.event)
                self.event = {}
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    self.event["data"] = self.event.get("data", "") + value
                else:
                    self.event[name] = value
        if not got and not out:
            return None
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Soak:
    def __init__(self, args, server):
        self.args = args
        self.server = server
        self.stop = threading.Event()
        self.clients_stop = threading.Event()
        self.failures = Failures()
        self.counters = Counters()
        self.channels = [f"soak-{i}" for i in range(args.channels)]
        # Large messages, fast: slow and stalled readers there fall behind the lag
        # bound (and the kernel's socket buffers, a few MB on loopback) within seconds.
        self.flood = "soak-flood"
        # The sequence number each channel's next message carries.
        self.published = {c: 0 for c in self.channels + [self.flood]}
        self.threads = []

    # -- helpers -------------------------------------------------------------------

    def spawn(self, target, *args, strict=True):
        thread = threading.Thread(target=self.guard, args=(target, strict) + args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def guard(self, target, strict, *args):
        """Runs a worker. A strict one (publishers, well-behaved subscribers, the CLI)
        fails the run on any error; the others (slow, stalled, garbage) are hostile on
        purpose: an error of theirs is counted and they start again."""
        while not self.clients_stop.is_set():
            try:
                target(*args)
                return
            except Exception as error:
                if self.clients_stop.is_set():
                    return
                if strict:
                    self.failures.add(f"{target.__name__} crashed: {error!r}")
                    return
                self.counters.add(f"{target.__name__}_errors")
                self.pause(0.2)

    def pause(self, seconds):
        return self.clients_stop.wait(seconds)

    # -- publishers ---------------------------------------------------------------

    def publisher(self, channels, rate, pad=512):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        interval = 1.0 / rate
        next_at = time.monotonic()
        turn = 0
        while not self.clients_stop.is_set():
            channel = channels[turn % len(channels)]
            seq = self.published[channel]
            body = json.dumps({"type": "seq", "payload": {"c": channel, "seq": seq,
                                                            "pad": "x" * random.randrange(pad // 2, pad)}})
            if turn % 2 == 0:
                try:
                    conn.request("POST", f"/broadcast?channel_id={channel}", body,
                                 {"Content-Type": "application/json"})
                    reply = conn.getresponse()
                    reply.read()
                    ok = reply.status == 200
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
                    ok = False
            else:
                payload = json.loads(body)["payload"]
                answer = self.server.command(json.dumps(
                    {"v": "b", "c": channel, "t": "seq", "p": payload}))
                ok = answer == "ack"
                if not ok:
                    self.counters.add("socket_publish_errors")
            if ok:
                self.published[channel] = seq + 1
                self.counters.add("published")
            else:
                self.counters.add("publish_retries")
            turn += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.pause(delay)
            else:
                next_at = time.monotonic()

    # -- well-behaved subscribers -----------------------------------------------------

    def check(self, who, state, event):
        """Checks one event of a well-behaved subscriber: the next of its channel."""
        if event.get("event") == "_eric_error":
            self.failures.add(f"{who}: marker {event.get('data')}")
            return False
        if event.get("event") != "seq":
            return True
        seq = json.loads(event["data"])["seq"]
        expected = state.get("next")
        if expected is not None and seq != expected:
            kind = "duplicate" if seq < expected else "gap"
            self.failures.add(f"{who}: {kind}: got seq {seq}, expected {expected}")
            state["next"] = seq + 1
            return False
        state["next"] = seq + 1
        state["last_id"] = event.get("id")
        state["received"] = state.get("received", 0) + 1
        self.counters.add("checked_events")
        return True

    def subscriber(self, index):
        """Joins with /watch, reads for a while, then leaves or resumes, again and again."""
        rng = random.Random(index)
        while not self.clients_stop.is_set():
            # The first subscriber keeps up with the flood channel.
            channel = self.flood if index == 0 else rng.choice(self.channels)
            who = f"subscriber {index} on {channel}"
            state = {}
            reader = SseReader(self.server.port, f"/watch/{channel}")
            self.counters.add("joins")
            sessions = rng.randint(1, 4)
            for session in range(sessions):
                until = time.monotonic() + rng.uniform(0.5, 4.0)
                while time.monotonic() < until and not self.clients_stop.is_set():
                    events = reader.events()
                    if events is None:
                        self.failures.add(f"{who}: the stream ended")
                        break
                    for event in events:
                        self.check(who, state, event)
                reader.close()
                if session + 1 == sessions or self.clients_stop.is_set():
                    self.counters.add("leaves")
                    break
                # Resume: away a moment, then back with the last id seen.
                self.pause(rng.uniform(0.0, 0.5))
                reader = SseReader(self.server.port, f"/watch/{channel}", state.get("last_id"))
                self.counters.add("resumes")

    def named_subscriber(self, index):
        """A named listener's /stream, dropped and resumed with Last-Event-ID."""
        rng = random.Random(1000 + index)
        channel = self.channels[index % len(self.channels)]
        who = f"named subscriber {index} on {channel}"
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        conn.request("POST", f"/subscribe?channel_id={channel}", "",
                     {"Content-Type": "application/json"})
        reply = conn.getresponse()
        listener = json.loads(reply.read())["listener_id"]
        conn.close()
        state = {}
        while not self.clients_stop.is_set():
            reader = SseReader(self.server.port, f"/stream/{channel}/{listener}", state.get("last_id"))
            until = time.monotonic() + rng.uniform(0.5, 3.0)
            while time.monotonic() < until and not self.clients_stop.is_set():
                events = reader.events()
                if events is None:
                    self.failures.add(f"{who}: the stream ended")
                    break
                for event in events:
                    self.check(who, state, event)
            reader.close()
            self.counters.add("resumes")
            self.pause(rng.uniform(0.0, 0.5))

    # -- slow, stalled, garbage --------------------------------------------------------

    def slow_reader(self, index):
        """Reads a few bytes now and then: ended as too slow, it resumes from its last id."""
        rng = random.Random(2000 + index)
        last_id = None
        while not self.clients_stop.is_set():
            channel = self.flood
            reader = SseReader(self.server.port, f"/watch/{channel}", last_id, rcvbuf=4096)
            until = time.monotonic() + rng.uniform(10, 40)
            while time.monotonic() < until and not self.clients_stop.is_set():
                events = reader.events(max_bytes=128)
                if events is None:
                    self.counters.add("slow_streams_ended")
                    break
                for event in events:
                    if event.get("event") == "_eric_error" and "too_slow" in event.get("data", ""):
                        self.counters.add("too_slow_events")
                    if event.get("id"):
                        last_id = event["id"]
                self.pause(0.1)
            reader.close()

    def stalled_reader(self, index):
        """Opens a stream and never reads it, then leaves."""
        rng = random.Random(3000 + index)
        while not self.clients_stop.is_set():
            channel = self.flood if rng.random() < 0.5 else rng.choice(self.channels)
            if index % 2 == 0:
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(10)
                sock.connect(("127.0.0.1", self.server.port))
                sock.sendall(f"GET /watch/{channel} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            else:
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(self.server.socket)
                sock.sendall(json.dumps({"v": "w", "c": channel}).encode())
                sock.shutdown(socket.SHUT_WR)
            self.counters.add("stalled")
            self.pause(rng.uniform(2, 15))
            sock.close()

    def garbage(self, index):
        rng = random.Random(4000 + index)
        while not self.clients_stop.is_set():
            kind = rng.randrange(6)
            try:
                if kind == 0:
                    with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
                        s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))))
                        s.shutdown(socket.SHUT_WR)
                        s.recv(4096)
                elif kind == 1:
                    with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
                        s.sendall(b"GET /watch/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
                        self.pause(rng.uniform(0, 0.5))
                elif kind == 2:
                    with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
                        s.sendall(b"POST /broadcast?channel_id=soak-0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
                        s.recv(4096)
                elif kind == 3:
                    self.server.command(rng.choice([
                        "{", "not json", '{"v": "zz"}', '{"v": "b", "c": "nope", "t": "t"}',
                        '{"v": "b", "c": "soak-0", "t": "a\\nb"}', "\x00\xff" * 50]))
                elif kind == 4:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.settimeout(5)
                        s.connect(self.server.socket)
                        s.sendall(b'{"v": "b", "c": ')
                        self.pause(rng.uniform(0, 0.5))
                else:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.settimeout(5)
                        s.connect(self.server.socket)
                        s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 500))))
                        s.shutdown(socket.SHUT_WR)
                        s.recv(4096)
            except OSError:
                pass
            self.counters.add("garbage")
            self.pause(rng.uniform(0.02, 0.2))

    def cli_user(self):
        """The `eric` client subcommands, one after another."""
        rng = random.Random(5000)
        n = 0
        while not self.clients_stop.is_set():
            channel = f"cli-{n % 3}"
            n += 1
            steps = [
                ("channel", "create", "--id", channel),
                ("listener", "add", channel),
            ]
            results = [self.server.cli(*step) for step in steps]
            listener = results[1].stdout.strip()
            if results[1].returncode != 0:
                self.failures.add(f"eric listener add: {results[1].stderr.strip()}")
                self.pause(1)
                continue
            calls = [
                ("dispatch", channel, listener, "hello", json.dumps({"n": n})),
                ("broadcast", channel, "all", json.dumps({"n": n})),
                ("listen", channel, listener, "--count", "2"),
                ("channel", "list", "--listeners", "--json"),
                ("listener", "rm", channel, listener),
                ("channel", "rm", channel),
            ]
            for call in calls:
                result = self.server.cli(*call)
                self.counters.add("cli_calls")
                if result.returncode != 0:
                    self.failures.add(f"eric {' '.join(call)}: exit {result.returncode}: "
                                      f"{result.stderr.strip()}")
                elif call[0] == "listen" and result.stdout.split() != ["hello", f'{{"n":{n}}}', "all", f'{{"n":{n}}}']:
                    self.failures.add(f"eric listen printed {result.stdout!r}")
            self.pause(rng.uniform(0.1, 0.5))

    # -- the run ---------------------------------------------------------------------

    def run(self):
        args = self.args
        for channel in self.channels + [self.flood]:
            result = self.server.cli("channel", "create", "--id", channel)
            if result.returncode != 0:
                raise SystemExit(f"cannot create {channel}: {result.stderr}")
        per = max(1, len(self.channels) // args.publishers)
        for i in range(args.publishers):
            group = self.channels[i * per:(i + 1) * per] or self.channels[-1:]
            self.spawn(self.publisher, group, args.rate / args.publishers)
        if args.flood_rate > 0:
            self.spawn(self.publisher, [self.flood], args.flood_rate, 8192)
        for i in range(args.subscribers):
            self.spawn(self.subscriber, i)
        for i in range(args.named):
            self.spawn(self.named_subscriber, i)
        for i in range(args.slow):
            self.spawn(self.slow_reader, i, strict=False)
        for i in range(args.stalled):
            self.spawn(self.stalled_reader, i, strict=False)
        for i in range(args.garbage):
            self.spawn(self.garbage, i, strict=False)
        if args.cli:
            self.spawn(self.cli_user)


def median(values):
    return statistics.median(values) if values else 0


def write_svg(path, samples, warmup):
    """RSS (MiB) and fds over time, two panels, a line each."""
    width, height, pad = 900, 520, 60
    panel = (height - 3 * pad) / 2
    t_max = max(s["t"] for s in samples) or 1

    def panel_svg(top, key, label, scale, color):
        values = [s[key] * scale for s in samples]
        v_max = max(values) * 1.1 or 1
        points = " ".join(
            f"{pad + (s['t'] / t_max) * (width - 2 * pad):.1f},"
            f"{top + panel - (v / v_max) * panel:.1f}"
            for s, v in zip(samples, values))
        warm_x = pad + (warmup / t_max) * (width - 2 * pad)
        parts = [
            f'<rect x="{pad}" y="{top}" width="{width - 2 * pad}" height="{panel}" '
            'fill="none" stroke="#999"/>',
            f'<line x1="{warm_x:.1f}" y1="{top}" x2="{warm_x:.1f}" y2="{top + panel}" '
            'stroke="#bbb" stroke-dasharray="4 4"/>',
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>',
            f'<text x="{pad}" y="{top - 8}" font-size="13">{label} (max {v_max / 1.1:.1f})</text>',
            f'<text x="{pad - 5}" y="{top + 10}" font-size="11" text-anchor="end">{v_max:.0f}</text>',
            f'<text x="{pad - 5}" y="{top + panel}" font-size="11" text-anchor="end">0</text>',
        ]
        return "\n".join(parts)

    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        panel_svg(pad, "rss_kb", "eric serve RSS, MiB", 1 / 1024, "#1f77b4"),
        panel_svg(2 * pad + panel, "fds", "eric serve open fds", 1, "#d62728"),
        f'<text x="{width / 2}" y="{height - 15}" font-size="12" text-anchor="middle">'
        f'seconds (0-{t_max:.0f}); dashed: end of warm-up</text>',
        "</svg>",
    ]
    with open(path, "w") as f:
        f.write("\n".join(body) + "\n")


def default_eric():
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "eric")
        if os.path.exists(path):
            return path
    return shutil.which("eric")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eric", default=default_eric(), help="the eric binary")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before growth is measured (default: half the run)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--out", default=None, help="directory for the CSV, JSON and SVG")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=400, help="publishes per second in all")
    parser.add_argument("--flood-rate", type=float, default=100,
                        help="publishes per second of 4-8 KiB on the flood channel")
    parser.add_argument("--subscribers", type=int, default=24)
    parser.add_argument("--named", type=int, default=4)
    parser.add_argument("--slow", type=int, default=3)
    parser.add_argument("--stalled", type=int, default=6)
    parser.add_argument("--garbage", type=int, default=2)
    parser.add_argument("--no-cli", dest="cli", action="store_false")
    parser.add_argument("--max-growth", type=float, default=0.05)
    parser.add_argument("--history", type=int, default=256,
                        help="eric serve's --history: small enough that the logs are full after warm-up")
    parser.add_argument("--max-lag-bytes", type=int, default=64 * 1024,
                        help="eric serve's --max-lag-bytes")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="an extra argument for eric serve (repeatable)")
    args = parser.parse_args()
    if not args.eric or not os.path.exists(args.eric):
        raise SystemExit("no eric binary: build it (cargo build --release -p eric-cli) or pass --eric")
    warmup = args.warmup if args.warmup is not None else args.seconds / 2
    workdir = tempfile.mkdtemp(prefix="eric-soak-")
    out = args.out or workdir
    os.makedirs(out, exist_ok=True)

    # A small history window would turn a resume after a pause into a gap: keep enough.
    # A lag bound lower than the default, so that slow readers reach it within a
    # short run (a well-behaved subscriber is never that far behind).
    server = Server(args.eric, workdir,
                    ["--history", str(args.history), "--max-lag-bytes", str(args.max_lag_bytes)]
                    + args.serve_arg)
    pid = server.proc.pid
    log(f"eric serve pid {pid} on {server.http} and {server.socket}; {args.seconds:.0f} s, "
        f"warm-up {warmup:.0f} s, out {out}")
    time.sleep(0.5)
    idle_before = proc_sample(pid)
    soak = Soak(args, server)
    soak.run()

    samples = []
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        while True:
            t = time.monotonic() - started
            if server.proc.poll() is not None:
                soak.failures.add(f"eric serve exited with {server.proc.returncode}")
                break
            rss_kb, fds, threads, cpu_s = proc_sample(pid)
            samples.append({"t": round(t, 2), "rss_kb": rss_kb, "fds": fds,
                            "threads": threads, "cpu_s": cpu_s})
            if t >= args.seconds:
                break
            time.sleep(args.interval)
    finally:
        soak.clients_stop.set()
        for thread in soak.threads:
            thread.join(timeout=30)
    # Every client gone: what the server still holds.
    time.sleep(2)
    idle_after = proc_sample(pid) if server.proc.poll() is None else None
    load_after = os.getloadavg()
    code = server.stop()
    with open(server.log_path, errors="replace") as f:
        serve_log = f.read()
    # The server's counted summaries of what queues lost (refusals.rs): streams ended as
    # too slow, what their queues discarded, publishes refused for want of memory.
    logged = {}
    for line in serve_log.splitlines():
        if "full queues" not in line:
            continue
        for field in line.split():
            name, _, value = field.partition("=")
            if value.isdigit():
                logged[name] = logged.get(name, 0) + int(value)
    if "panicked" in serve_log:
        soak.failures.add("eric serve logged a panic: see serve.log")
    if code not in (0, None):
        soak.failures.add(f"eric serve exited with {code} after SIGTERM")

    with open(os.path.join(out, "samples.csv"), "w") as f:
        f.write("t_s,rss_kb,fds,threads,cpu_s\n")
        for s in samples:
            f.write(f"{s['t']},{s['rss_kb']},{s['fds']},{s['threads']},{s['cpu_s']:.2f}\n")
    shutil.copy(server.log_path, os.path.join(out, "serve.log"))
    write_svg(os.path.join(out, "soak.svg"), samples, warmup)

    after_warmup = [s for s in samples if s["t"] >= warmup]
    window = max(1, len(after_warmup) // 10)
    early, late = after_warmup[:window], after_warmup[-window:]
    growth = {}
    for key in ("rss_kb", "threads"):
        start = median([s[key] for s in early])
        end = median([s[key] for s in late])
        growth[key] = {"after_warmup": start, "end": end,
                       "growth": (end - start) / start if start else 0}
    fds_growth = None
    if idle_after:
        fds_growth = {"before_clients": idle_before[1], "after_clients": idle_after[1]}
    over = [k for k, g in growth.items() if g["growth"] > args.max_growth]
    if idle_after and idle_after[1] > idle_before[1] + 2 and \
            idle_after[1] > idle_before[1] * (1 + args.max_growth):
        over.append("fds")
    summary = {
        "seconds": args.seconds,
        "warmup_s": warmup,
        "eric": args.eric,
        "settings": {k: getattr(args, k) for k in
                     ("channels", "publishers", "rate", "flood_rate", "subscribers", "named", "slow",
                      "stalled", "garbage", "cli")},
        "load_average_before": load_before,
        "load_average_after": load_after,
        "counters": soak.counters.values,
        "server_logged": logged,
        "failures": soak.failures.count,
        "first_failures": soak.failures.first,
        "growth": growth,
        "fds_idle": fds_growth,
        "cpu_s": samples[-1]["cpu_s"] - samples[0]["cpu_s"] if samples else 0,
        "peak_rss_kb": max((s["rss_kb"] for s in samples), default=0),
        "peak_fds": max((s["fds"] for s in samples), default=0),
        "over_growth_limit": over,
        "serve_exit": code,
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    if soak.counters.values.get("checked_events", 0) == 0:
        log("FAILED: no event was checked")
        return 1
    if soak.failures.count or over:
        log(f"FAILED: {soak.failures.count} failures, growth over the limit: {over}")
        return 1
    log("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
