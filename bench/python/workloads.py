"""The Python side of bench/compare: workloads W1-W4 and W7 against eric-sse 0.6.0.3.

One workload per invocation; prints one JSON object on stdout, with the same keys as
bench/workloads (eric-workloads). The two programs must time exactly the same things:
see bench/README.md, "Workloads", before changing either.

    python workloads.py w1      [--messages 200000]
    python workloads.py w2      [--messages 200] [--listeners 1000]
    python workloads.py w3      [--messages 50000]
    python workloads.py w4      [--messages 10000] [--rate 5000]
    python workloads.py w4idle  [--seconds 3]
    python workloads.py w7sha   [--messages 2000] [--workers 2] [--rounds 200]
    python workloads.py w7sleep [--messages 2000] [--workers 2] [--sleep-ms 1]
"""

import argparse
import asyncio
import hashlib
import json
import sys
import time

from eric_sse.entities import MESSAGE_TYPE_CLOSED, Message, MessageQueueListener
from eric_sse.exception import NoMessagesException
from eric_sse.prefabs import DataProcessingChannel, SSEChannel

# eric-sse's logger stays at its default level (INFO, set by eric_sse.get_logger): its
# dispatch() calls logger.debug(f"Dispatched {msg} to {listener_id}"), whose f-string is
# built even though nothing is printed. That is what it costs in a real program.


def counter(i):
    """{"i": i} of type "t", the message of W1-W3."""
    return Message(type="t", payload={"i": i})


def rate(count, seconds):
    return count / seconds if seconds > 0 else float("inf")


def percentile_us(sorted_ns, p):
    if not sorted_ns:
        return float("nan")
    return sorted_ns[round((len(sorted_ns) - 1) * p)] / 1000.0


def w1(n):
    """Dispatch n prebuilt messages to one started listener, then drain with deliver_next."""
    channel = SSEChannel()
    listener = channel.add_listener()
    listener.start_sync()
    lid = listener.id
    messages = [counter(i) for i in range(n)]

    started = time.perf_counter()
    for message in messages:
        channel.dispatch(lid, message)
    dispatch = time.perf_counter() - started

    started = time.perf_counter()
    drained = 0
    try:
        while True:
            channel.deliver_next(lid)
            drained += 1
    except NoMessagesException:
        pass
    drain = time.perf_counter() - started
    del messages
    return {
        "params": {"messages": n},
        "metrics": {
            "dispatch_per_s": rate(n, dispatch),
            "drain_per_s": rate(drained, drain),
            "dispatch_s": dispatch,
            "drain_s": drain,
        },
        "check": {"expected": n, "received": drained},
    }


def w2(n, listeners):
    """Broadcast n prebuilt messages to `listeners` started listeners, then drain them all."""
    channel = SSEChannel()
    ids = []
    for _ in range(listeners):
        listener = channel.add_listener()
        listener.start_sync()
        ids.append(listener.id)
    messages = [counter(i) for i in range(n)]

    started = time.perf_counter()
    for message in messages:
        channel.broadcast(message)
    delivered = 0
    for lid in ids:
        try:
            while True:
                channel.deliver_next(lid)
                delivered += 1
        except NoMessagesException:
            pass
    elapsed = time.perf_counter() - started
    return {
        "params": {"messages": n, "listeners": listeners},
        "metrics": {"deliveries_per_s": rate(delivered, elapsed), "elapsed_s": elapsed},
        "check": {"expected": n * listeners, "received": delivered},
    }


def w3(n):
    """n queued messages (not timed) consumed with `async for` over message_stream."""
    channel = SSEChannel()
    listener = channel.add_listener()
    listener.start_sync()
    messages = [counter(i) for i in range(n)]
    for message in messages:
        channel.dispatch(listener.id, message)

    async def consume():
        stream = await channel.message_stream(listener)
        started = time.perf_counter()
        received = 0
        if n > 0:
            async for _event in stream:
                received += 1
                if received == n:
                    break
        return received, time.perf_counter() - started

    received, elapsed = asyncio.run(consume())
    del messages
    return {
        "params": {"messages": n, "executor": "asyncio.run"},
        "metrics": {"items_per_s": rate(received, elapsed), "elapsed_s": elapsed},
        "check": {"expected": n, "received": received},
    }


def w4(n, per_second):
    """Producer task on the consumer's event loop dispatches {"sent": ns} at per_second
    on an absolute schedule; the consumer iterates message_stream and records latency."""
    channel = SSEChannel()
    listener = channel.add_listener()
    listener.start_sync()
    interval_ns = 1_000_000_000 // per_second

    async def run():
        stream = await channel.message_stream(listener)

        async def producer():
            start = time.perf_counter_ns()
            for i in range(n):
                due = start + i * interval_ns
                now = time.perf_counter_ns()
                if due > now:
                    await asyncio.sleep((due - now) / 1e9)
                channel.dispatch(listener.id, Message(type="t", payload={"sent": time.perf_counter_ns()}))
            channel.notify_end()

        cpu_before = time.process_time()
        wall_before = time.perf_counter()
        task = asyncio.get_running_loop().create_task(producer())
        latencies = []
        async for event in stream:
            if event["event"] == MESSAGE_TYPE_CLOSED:
                break
            latencies.append(time.perf_counter_ns() - event["data"]["sent"])
        await task
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        return latencies, cpu, wall

    latencies, cpu, wall = asyncio.run(run())
    received = len(latencies)
    latencies.sort()
    return {
        "params": {"messages": n, "rate": per_second, "producer": "asyncio task on the consumer's loop",
                   "consumer": "asyncio.run"},
        "metrics": {
            "p50_us": percentile_us(latencies, 0.50),
            "p99_us": percentile_us(latencies, 0.99),
            "max_us": percentile_us(latencies, 1.0),
            "cpu_pct": 100.0 * cpu / wall,
            "wall_s": wall,
        },
        "check": {"expected": n, "received": received},
    }


def w4idle(seconds):
    """One started listener with an empty queue, its stream iterated by a task; process
    CPU over `seconds`."""
    channel = SSEChannel()
    listener = channel.add_listener()
    listener.start_sync()

    async def run():
        stream = await channel.message_stream(listener)

        async def consumer():
            async for _event in stream:
                return 1
            return 0

        task = asyncio.get_running_loop().create_task(consumer())
        await asyncio.sleep(0.1)
        cpu_before = time.process_time()
        wall_before = time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        channel.dispatch(listener.id, Message(type="bye"))
        woke = await task
        return cpu, wall, woke

    cpu, wall, woke = asyncio.run(run())
    return {
        "params": {"seconds": seconds},
        "metrics": {"cpu_pct": 100.0 * cpu / wall, "cpu_s": cpu},
        "check": {"expected": 1, "received": woke},
    }


def sha_work(rounds):
    """A 1 KiB block of 0x07 bytes; `rounds` times, hash it with SHA-256 and write the
    digest over its first 32 bytes."""
    block = bytearray(b"\x07" * 1024)
    for _ in range(rounds):
        block[:32] = hashlib.sha256(block).digest()
    return block


def w7(n, workers, handler, params):
    """A DataProcessingChannel(max_workers=workers); n messages queued (not timed), then
    process_queue drained with `async for`, with `handler` in on_message."""

    class Worker(MessageQueueListener):
        def on_message(self, msg):
            handler()

    channel = DataProcessingChannel(max_workers=workers)
    listener = Worker()
    channel.register_listener(listener)
    listener.start_sync()
    for i in range(n):
        channel.dispatch(listener.id, counter(i))

    async def run():
        started = time.perf_counter()
        received = 0
        async for _item in await channel.process_queue(listener):
            received += 1
        return received, time.perf_counter() - started

    received, elapsed = asyncio.run(run())
    return {
        "params": params,
        "metrics": {"items_per_s": rate(received, elapsed), "elapsed_s": elapsed},
        "check": {"expected": n, "received": received, "failed": 0},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=["w1", "w2", "w3", "w4", "w4idle", "w7sha", "w7sleep"])
    parser.add_argument("--messages", type=int)
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--sleep-ms", type=float, default=1.0)
    args = parser.parse_args()
    w = args.workload

    def messages(default):
        return default if args.messages is None else args.messages

    if w == "w1":
        result = w1(messages(200_000))
    elif w == "w2":
        result = w2(messages(200), args.listeners)
    elif w == "w3":
        result = w3(messages(50_000))
    elif w == "w4":
        result = w4(messages(10_000), args.rate)
    elif w == "w4idle":
        result = w4idle(args.seconds)
    elif w == "w7sha":
        rounds = args.rounds
        result = w7(messages(2_000), args.workers, lambda: sha_work(rounds),
                    {"messages": messages(2_000), "workers": args.workers, "rounds": rounds})
    else:
        pause = args.sleep_ms / 1000.0
        result = w7(messages(2_000), args.workers, lambda: time.sleep(pause),
                    {"messages": messages(2_000), "workers": args.workers, "sleep_ms": args.sleep_ms})
    out = {"workload": w, "side": "python", **result}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
