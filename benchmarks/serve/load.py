"""Load test: N concurrent clients post /v1/plan to a real server on loopback for a bounded time.

Starts ``tinyagent-ft serve`` for each model (or uses --url), waits for /readyz, then every client loops
over held-out queries until time is up. Prints p50/p95 latency, throughput and errors per model:

    python benchmarks/serve/load.py --models tiny-random smollm2-135m --clients 4 --seconds 60
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time

import httpx2 as httpx

QUERIES = ["Text Dana that I am running 10 minutes late", "Email Lutfi the Q3 budget file and remind me to call him tomorrow",
           "Create a meeting with Sid and Ana next Monday at 2pm about the launch", "Show me directions to the airport",
           "Open my note about groceries and add milk to it", "What's the zoom link for the standup? Send it to Bob"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, threads: int | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env_prefix = [] if threads is None else ["taskset", "-c", ",".join(map(str, range(threads)))]
    proc = subprocess.Popen([*env_prefix, sys.executable, "-m", "tinyagent_ft", "serve", "--model", model,
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server for {model} exited with {proc.returncode}")
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"server for {model} not ready in 300 s")


def drive(url: str, clients: int, seconds: float, max_new_tokens: int) -> dict:
    latencies, errors, lock = [], [], threading.Lock()
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        with httpx.Client(timeout=120) as c:
            n = i
            while time.perf_counter() < stop:
                body = {"query": QUERIES[n % len(QUERIES)], "max_new_tokens": max_new_tokens}
                t = time.perf_counter()
                try:
                    r = c.post(url + "/v1/plan", json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError as exc:
                    ok, r = False, exc
                with lock:
                    (latencies if ok else errors).append(time.perf_counter() - t if ok else str(getattr(r, "status_code", r)))
                n += clients
    begin = time.perf_counter()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - begin
    lat = sorted(latencies) or [float("nan")]
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(latencies), "errors": len(errors),
            "throughput_rps": len(latencies) / wall, "p50_ms": 1000 * statistics.median(lat),
            "p95_ms": 1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], "error_samples": errors[:5]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["tiny-random"])
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--clients", type=int, default=4), ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--cpus", type=int, help="pin the server to the first N cores (taskset)")
    ap.add_argument("--out", help="JSON results")
    args = ap.parse_args()
    rows = {}
    for model in ([args.url] if args.url else args.models):
        proc, url = (None, model) if args.url else start_server(model, args.cpus)
        try:
            rows[model] = drive(url, args.clients, args.seconds, args.max_new_tokens)
        finally:
            if proc:
                proc.terminate()
                proc.wait(10)
    print("| model | clients | requests | errors | throughput (req/s) | p50 (ms) | p95 (ms) |\n|---|---|---|---|---|---|---|")
    for model, r in rows.items():
        print(f"| {model} | {r['clients']} | {r['requests']} | {r['errors']} | {r['throughput_rps']:.2f} | "
              f"{r['p50_ms']:,.0f} | {r['p95_ms']:,.0f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
