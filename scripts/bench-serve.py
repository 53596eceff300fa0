#!/usr/bin/env python3
"""A bounded load test of ngpt-serve on loopback: one streaming client alone, then CLIENTS concurrent streaming
clients for a fixed number of requests, in ROUNDS rounds. Prints the aggregate tokens/s against the single-stream
rate, time to first token and per-token latency (p50/p99), failed requests, and the server's resident memory after
each round (flat = no leak). Starts the server itself (.build/release/ngpt-serve) and stops it at the end.

    scripts/bench-serve.py --checkpoint RUN [--clients 32] [--requests 128] [--rounds 2] [--max-tokens 128]
                           [--slots 8] [--port 18123]

The client is Python asyncio over raw HTTP/1.1 (one connection per request, as most OpenAI clients do), so it is
cheap, but on a 2-core machine it shares the cores with the server: its CPU time is printed beside the results.
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

PROMPTS = ["KING HENRY.", "ROMEO.\nBut soft,", "The", "First Citizen.\nBefore we proceed any further, hear me speak.",
           "HAMLET.", "To be, or not to be", "Once upon a time", "LADY MACBETH.\nOut, damned spot!"]


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def completion(port, body):
    """One streaming completion. Returns (ok, ttft seconds, inter-token gaps, completion tokens, decode seconds)."""
    data = json.dumps(body).encode()
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        writer.close()
        return False, None, [], 0, 0
    chunked = b"transfer-encoding: chunked" in head.lower()
    first = last = None
    gaps, tokens, done, pending = [], 0, False, b""
    while not done:
        if chunked:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                break
            piece = await reader.readexactly(size + 2)
            pending += piece[:-2]
        else:
            piece = await reader.read(65536)
            if not piece:
                break
            pending += piece
        while b"\n\n" in pending:
            event, pending = pending.split(b"\n\n", 1)
            if event == b"data: [DONE]":
                done = True
                break
            chunk = json.loads(event[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if any(c["text"] for c in chunk["choices"]):
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    gaps.append(now - last)
                last = now
    writer.close()
    if not done or first is None:
        return False, None, gaps, tokens, 0
    return True, first - start, gaps, tokens, last - first


async def load(port, clients, requests, max_tokens, seed):
    """`clients` workers take `requests` requests from a shared counter; returns the per-request results and wall."""
    queue = list(range(requests))
    results = []

    async def worker():
        while queue:
            i = queue.pop()
            body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0.8,
                    "seed": seed + i, "stream": True, "stream_options": {"include_usage": True}}
            try:
                results.append(await completion(port, body))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                results.append((False, None, [], 0, 0))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return results, time.perf_counter() - start


def summary(name, results, wall):
    ok = [r for r in results if r[0]]
    tokens = sum(r[3] for r in ok)
    ttft = [r[1] * 1000 for r in ok]
    gaps = [g * 1000 for r in ok for g in r[2]]
    per_stream = [(r[3] - 1) / r[4] for r in ok if r[4] > 0 and r[3] > 1]
    return {"name": name, "requests": len(results), "failed": len(results) - len(ok), "tokens": tokens,
            "wall_s": wall, "aggregate_tok_s": tokens / wall, "stream_tok_s_median": statistics.median(per_stream),
            "ttft_ms_p50": percentile(ttft, 50), "ttft_ms_p99": percentile(ttft, 99),
            "token_ms_p50": percentile(gaps, 50), "token_ms_p99": percentile(gaps, 99)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="the model to serve (a run directory or checkpoint)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent streaming clients (default 32)")
    ap.add_argument("--requests", type=int, default=128, help="requests per round (default 128)")
    ap.add_argument("--rounds", type=int, default=2, help="load rounds; memory is read after each (default 2)")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens per request (default 128)")
    ap.add_argument("--single", type=int, default=4, help="requests of the single-stream baseline (default 4)")
    ap.add_argument("--slots", type=int, default=8, help="the server's --slots (default 8)")
    ap.add_argument("--threads", type=int, default=0, help="the server's --threads (default 0: its default, all cores but one)")
    ap.add_argument("--port", type=int, default=18123, help="loopback port (default 18123)")
    ap.add_argument("--server", default=".build/release/ngpt-serve", help="the ngpt-serve binary")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    a = ap.parse_args()

    server = subprocess.Popen([a.server, "--checkpoint", a.checkpoint, "--port", str(a.port), "--slots",
                               str(a.slots), "--max-waiting", str(max(64, a.clients)), "--threads", str(a.threads)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", a.port)).close()
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit("ngpt-serve exited: " + server.stderr.read().strip())
                time.sleep(0.1)
        asyncio.run(load(a.port, 1, 1, 8, 0))  # warm-up
        cpu0 = time.process_time()
        single = summary("1 client", *asyncio.run(load(a.port, 1, a.single, a.max_tokens, 1000)))
        rows, memory = [single], [rss_mib(server.pid)]
        for r in range(a.rounds):
            rows.append(summary(f"{a.clients} clients, round {r + 1}",
                                *asyncio.run(load(a.port, a.clients, a.requests, a.max_tokens, 2000 + r * 10000))))
            memory.append(rss_mib(server.pid))
        client_cpu = time.process_time() - cpu0
        wall = sum(row["wall_s"] for row in rows)
    finally:
        server.terminate()
        server.wait()
    if a.json:
        json.dump({"rows": rows, "rss_mib": memory, "client_cpu_s": client_cpu, "wall_s": wall}, sys.stdout)
        print()
        return
    cpu = os.popen("grep -m1 'model name' /proc/cpuinfo").read().split(":")[-1].strip()
    print(f"ngpt-serve load test: {a.checkpoint}, --slots {a.slots} --threads {a.threads}, {a.max_tokens} tokens per request, "
          f"temperature 0.8; {cpu}, {os.cpu_count()} cores")
    print(f"{'':22} {'requests':>8} {'failed':>6} {'tokens':>7} {'tok/s':>8} {'per stream':>10} "
          f"{'TTFT p50':>9} {'p99':>7} {'token p50':>9} {'p99':>7}")
    for row in rows:
        print(f"{row['name']:22} {row['requests']:8d} {row['failed']:6d} {row['tokens']:7d} "
              f"{row['aggregate_tok_s']:8.0f} {row['stream_tok_s_median']:10.0f} {row['ttft_ms_p50']:7.0f}ms "
              f"{row['ttft_ms_p99']:5.0f}ms {row['token_ms_p50']:7.1f}ms {row['token_ms_p99']:5.1f}ms")
    for row in rows[1:]:
        print(f"{row['name']}: {row['aggregate_tok_s'] / single['aggregate_tok_s']:.2f}× the single stream's "
              f"aggregate rate")
    print("server RSS after the single stream and after each round: " + ", ".join(f"{m:.0f}" for m in memory)
          + " MiB")
    print(f"client CPU {client_cpu:.1f} s of {wall:.1f} s wall (it shares the machine's cores with the server)")
    if any(row["failed"] for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
