#!/usr/bin/env python3
"""Fan-out over TLS + HTTP/2 beside plain HTTP/1.1, with public tools only.

eric-fanout speaks HTTP/1.1 over TCP; for HTTP/2 over TLS the subscribers are nghttp2's
`h2load` (Debian's nghttp2-client), which opens the streams and reads what comes
without parsing it. So deliveries are counted on the server's side, from
`eric_deliveries_total{transport="http"}` (events handed to the streams' writers), the
same way for both protocols:

1. start `eric serve` (with a test certificate for TLS), create the channel;
2. `h2load` opens N `GET /watch/fanout` streams: over TLS + HTTP/2, C connections with
   N/C streams each (`-c C -m N/C`); over plain HTTP/1.1, N connections (`--h1`);
3. memory per idle subscriber: the server's RSS once all N are open, less its RSS
   before, divided by N;
4. M broadcasts from P keep-alive publishers; deliveries/s: N x M over the time from
   the first publish to the counter reaching N x M.

    bench/fanout/tls_h2.py --eric target/release/eric --subscribers 10000 --messages 50
"""

import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, eric, tmp, tls):
        self.port = free_port()
        self.tls = tls
        cmd = [eric, "serve", "--socket", str(Path(tmp) / f"eric-{self.port}.sock"),
               "--http", f"127.0.0.1:{self.port}", "--log-level", "warn",
               "--max-streams", "65536", "--max-connections", "65536"]
        if tls:
            key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                            "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
            cmd += ["--tls-cert", str(cert), "--tls-key", str(key)]
        self.log = open(Path(tmp) / f"eric-{self.port}.log", "wb")
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=self.log)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("eric serve did not start")
            time.sleep(0.05)

    def connection(self):
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=context,
                                               timeout=30)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None, connection=None):
        own = connection is None
        connection = connection or self.connection()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        if own:
            connection.close()
        return response.status, data

    def metric(self, series):
        _, body = self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[1])
        return 0.0

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def one_case(args, tls, tmp):
    server = Server(args.eric, tmp, tls)
    load = None
    try:
        status, body = server.request("PUT", "/create?channel_id=fanout")
        assert status == 200, body
        delivered = 'eric_deliveries_total{transport="http"}'
        subscribers = 'eric_subscribers{transport="http"}'
        time.sleep(1)
        before = rss_kib(server.process.pid)
        scheme = "https" if tls else "http"
        cmd = ["h2load", "-n", str(args.subscribers), "-t", "1"]
        if tls:
            cmd += ["-c", str(args.connections),
                    "-m", str(-(-args.subscribers // args.connections))]
        else:
            cmd += ["--h1", "-c", str(args.subscribers), "-m", "1"]
        cmd.append(f"{scheme}://127.0.0.1:{server.port}/watch/fanout")
        load = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + args.connect_timeout
        while server.metric(subscribers) < args.subscribers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {server.metric(subscribers):.0f} of "
                                   f"{args.subscribers} streams opened")
            time.sleep(0.2)
        time.sleep(2)
        after = rss_kib(server.process.pid)
        start_count = server.metric(delivered)
        expected = start_count + args.subscribers * args.messages
        share = [args.messages // args.publishers + (i < args.messages % args.publishers)
                 for i in range(args.publishers)]
        refused = []

        def publish(count):
            connection = server.connection()
            for k in range(count):
                status, _ = server.request(
                    "POST", "/broadcast?channel_id=fanout",
                    json.dumps({"type": "m", "payload": {"k": k}}), connection)
                if status != 200:
                    refused.append(status)
            connection.close()

        threads = [threading.Thread(target=publish, args=(n,)) for n in share]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + args.drain_timeout
        while (count := server.metric(delivered)) < expected:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        return {
            "protocol": "TLS + HTTP/2" if tls else "HTTP/1.1",
            "connections": args.connections if tls else args.subscribers,
            "subscribers": args.subscribers,
            "messages": args.messages,
            "refused": len(refused),
            "delivered": count - start_count,
            "expected": expected - start_count,
            "deliveries_per_s": (count - start_count) / elapsed,
            "rss_per_subscriber_bytes": (after - before) * 1024 / args.subscribers,
        }
    finally:
        if load:
            load.kill()
            load.wait()
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eric", required=True)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=100,
                        help="TLS + HTTP/2 connections the subscribers share")
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connect-timeout", type=float, default=120)
    parser.add_argument("--drain-timeout", type=float, default=60)
    parser.add_argument("--out", type=Path, help="write every run's figures here (JSON)")
    args = parser.parse_args()
    results = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="eric-tls-h2-") as tmp:
        for run in range(args.runs):
            for tls in (True, False):
                r = one_case(args, tls, tmp)
                results.append(r)
                short = r["delivered"] < r["expected"] or r["refused"]
                failed |= bool(short)
                print(f"run {run + 1} {r['protocol']:>12}: {r['deliveries_per_s']:,.0f} "
                      f"deliveries/s, {r['rss_per_subscriber_bytes']:,.0f} B per idle "
                      f"subscriber{'  (SHORT: ' + str(r['delivered']) + ')' if short else ''}",
                      flush=True)
    if args.out:
        args.out.write_text(json.dumps({"runs": results, "failed": failed}, indent=1))
    for protocol in ("TLS + HTTP/2", "HTTP/1.1"):
        rates = sorted(r["deliveries_per_s"] for r in results if r["protocol"] == protocol)
        memory = sorted(r["rss_per_subscriber_bytes"] for r in results
                        if r["protocol"] == protocol)
        print(f"{protocol}: median {rates[len(rates) // 2]:,.0f} deliveries/s, "
              f"{memory[len(memory) // 2]:,.0f} B per idle subscriber")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
