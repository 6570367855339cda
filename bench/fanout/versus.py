#!/usr/bin/env python3
"""Two eric servers on the same fan-out load, alternated: A B A B ...

Each side is an `eric` binary and the flags of its `eric serve` (two builds, or one
build with and without a setting). Every run starts a fresh server on a free port of
127.0.0.1, drives it with `eric-fanout` (N subscribers on one channel, M messages from
P publishers at full speed), and stops it. Alternating keeps the ratio honest on a
machine whose speed drifts; the medians and the ratio of the medians are printed, with
every run's figures, and nothing lost or duplicated is checked on every run.

    bench/fanout/versus.py --fanout target/release/eric-fanout \\
        --a target-new/release/eric --b target-old/release/eric \\
        --subscribers 1000 --messages 500 --runs 5

With `--a-flags`/`--b-flags` (one string each, split as a shell would) the sides differ
by their settings; `--a-token`/`--b-token` hand eric-fanout a JWT for its requests.
Exit status 1 when a run lost or duplicated anything, or failed.
"""

import argparse
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"eric serve exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port} after {timeout} s")


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def one_run(side, args, tmp):
    port = free_port()
    serve = [side["eric"], "serve", "--socket", str(Path(tmp) / f"eric-{port}.sock"),
             "--http", f"127.0.0.1:{port}", "--log-level", "warn", *side["flags"]]
    log = open(Path(tmp) / f"eric-{port}.log", "wb")
    server = subprocess.Popen(serve, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_for_port(port, server)
        load = [args.fanout, "--target", "eric", "--url", f"http://127.0.0.1:{port}",
                "--subscribers", str(args.subscribers), "--messages", str(args.messages),
                "--publishers", str(args.publishers), "--server-pid", str(server.pid),
                "--idle-seconds", str(args.idle_seconds)]
        if side["token"]:
            load += ["--token", side["token"]]
        done = subprocess.run(load, capture_output=True, text=True, timeout=args.timeout)
        if done.returncode != 0:
            raise RuntimeError(f"eric-fanout exited with {done.returncode}: {done.stderr.strip()}")
        return json.loads(done.stdout)
    finally:
        stop(server)
        log.close()


def figures(result):
    server = result.get("server") or {}
    return {
        "deliveries_per_s": result["deliveries_per_s"],
        "latency_p99_us": (result.get("latency_us") or {}).get("p99"),
        "rss_per_subscriber_bytes": server.get("rss_per_subscriber_bytes"),
        "busy_cpu_pct": server.get("busy_cpu_pct"),
    }


def problems(result):
    found = []
    for key in ("lost", "duplicates", "publish_errors", "subscriber_errors"):
        if result.get(key):
            found.append(f"{key} {result[key]}")
    if result.get("connected") != result.get("subscribers"):
        found.append(f"connected {result.get('connected')} of {result.get('subscribers')}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fanout", required=True, help="the eric-fanout binary")
    parser.add_argument("--a", required=True, help="side A's eric binary")
    parser.add_argument("--b", help="side B's eric binary (default: A's)")
    parser.add_argument("--a-flags", default="", help="side A's extra eric serve flags")
    parser.add_argument("--b-flags", default="", help="side B's extra eric serve flags")
    parser.add_argument("--a-token", help="a JWT eric-fanout sends to side A")
    parser.add_argument("--b-token", help="a JWT eric-fanout sends to side B")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--publishers", type=int, default=8)
    parser.add_argument("--idle-seconds", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5, help="runs of each side")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a run may take")
    parser.add_argument("--out", type=Path, help="write every run's JSON here")
    args = parser.parse_args()

    sides = {
        "A": {"eric": args.a, "flags": shlex.split(args.a_flags), "token": args.a_token},
        "B": {"eric": args.b or args.a, "flags": shlex.split(args.b_flags), "token": args.b_token},
    }
    runs = {"A": [], "B": []}
    failed = []
    with tempfile.TemporaryDirectory(prefix="eric-versus-") as tmp:
        for i in range(args.runs):
            for name in ("A", "B"):
                try:
                    result = one_run(sides[name], args, tmp)
                except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
                    failed.append(f"{name} run {i + 1}: {e}")
                    continue
                runs[name].append(result)
                found = problems(result)
                if found:
                    failed.append(f"{name} run {i + 1}: {', '.join(found)}")
                f = figures(result)
                print(f"{name} run {i + 1}: {f['deliveries_per_s']:,.0f} deliveries/s, "
                      f"latency p99 {f['latency_p99_us'] or 0:,.0f} us, "
                      f"server CPU {f['busy_cpu_pct'] or 0:.0f} %", flush=True)

    print()
    medians = {}
    for name in ("A", "B"):
        if not runs[name]:
            continue
        keyed = [figures(r) for r in runs[name]]
        medians[name] = {k: statistics.median(v[k] for v in keyed if v[k] is not None)
                         for k in keyed[0] if any(v[k] is not None for v in keyed)}
        m = medians[name]
        print(f"{name}: {sides[name]['eric']} {' '.join(sides[name]['flags'])}".rstrip())
        print(f"   median of {len(runs[name])}: {m['deliveries_per_s']:,.0f} deliveries/s, "
              f"latency p99 {m.get('latency_p99_us', float('nan')):,.0f} us, "
              f"RSS per subscriber {m.get('rss_per_subscriber_bytes', float('nan')):,.0f} B")
    if "A" in medians and "B" in medians:
        ratio = medians["A"]["deliveries_per_s"] / medians["B"]["deliveries_per_s"]
        print(f"A/B deliveries/s: {ratio:.3f}")
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                        "runs": runs, "medians": medians,
                                        "failed": failed}, indent=1))
    for line in failed:
        print(f"PROBLEM: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
