"""Benchmark the LLM client against a local endpoint with a fixed latency (issue 7).

A FakeLLMServer answers every chat request after ``--latency`` seconds (200 ms by default, roughly a
short completion from a hosted model). Measured in one run, each trial with fresh request texts:

- a sequential client (``LLMClient`` at concurrency 1, the baseline; ``--n-seq`` requests, its
  per-request rate extrapolated);
- ``LLMClient`` at ``--concurrency`` 16 over ``--n`` requests, with the persistent cache on (its
  writes are part of the cost) and the progress bar drawn (to a buffer);
- a second pass over the same requests: all from the cache, and the server must receive nothing.

Targets: throughput at concurrency 16 >= 80% of the ideal (concurrency / latency = 80 req/s) and
>= 10x the sequential client; 0 requests sent by the cached pass.

Usage: python benchmarks/bench_llm.py [--n 160] [--n-seq 20] [--concurrency 16] [--latency 0.2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=160, help="requests per concurrent trial")
    parser.add_argument("--n-seq", type=int, default=20, help="requests per sequential trial")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request, seconds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="okapi-bench-llm-") as tmp:
        run(Path(tmp), args)


def timed_pass(client, requests, desc: str) -> float:
    """Wall seconds of one ``complete_all``; the bar is drawn into a buffer, so its cost counts."""
    with contextlib.redirect_stderr(io.StringIO()):
        start = time.perf_counter()
        client.complete_all(requests, desc=desc)
        return time.perf_counter() - start


def run(work: Path, args: argparse.Namespace) -> None:
    from okapi_hf.create.backends import OpenAIBackend
    from okapi_hf.create.fake_llm import FakeLLMServer
    from okapi_hf.create.llm import ChatRequest, LLMClient, Price

    def requests(tag: str, n: int) -> list[ChatRequest]:
        system = "You are a helpful assistant. Answer in Vietnamese."
        return [
            ChatRequest.user(f"[{tag}] Instruction {i}: explain item {i}.", system=system) for i in range(n)
        ]

    ideal = args.concurrency / args.latency
    price = Price(0.15, 0.60)  # a small hosted model's list price, to exercise the cost accounting
    seq_rates, conc_rates, cached_rates, cached_sent = [], [], [], []
    with FakeLLMServer(latency=args.latency) as server:
        backend = OpenAIBackend(server.url, "fake-model", api_key="sk-benchmark")
        # warm-up: imports, the HTTP client, the first connections
        LLMClient(backend, concurrency=args.concurrency).complete_all(requests("warm", 16), progress=False)
        for trial in range(args.repeats):
            sequential = LLMClient(backend, concurrency=1)
            seconds = timed_pass(sequential, requests(f"seq{trial}", args.n_seq), "sequential")
            seq_rates.append(args.n_seq / seconds)

            cache = work / f"cache-{trial}.sqlite"
            client = LLMClient(backend, concurrency=args.concurrency, cache=cache, price=price)
            batch = requests(f"conc{trial}", args.n)
            before = server.count
            seconds = timed_pass(client, batch, "concurrent")
            assert server.count - before == args.n, "every request should have reached the server once"
            assert server.max_in_flight <= args.concurrency
            conc_rates.append(args.n / seconds)

            before = server.count
            seconds = timed_pass(client, batch, "cached")
            cached_sent.append(server.count - before)
            cached_rates.append(args.n / seconds)
            assert client.usage.cache_hits == args.n
            client.close()
            print(
                f"trial {trial + 1}: sequential {seq_rates[-1]:.2f} req/s, concurrent {conc_rates[-1]:.1f} req/s "
                f"({conc_rates[-1] / ideal:.1%} of ideal, {conc_rates[-1] / seq_rates[-1]:.1f}x), "
                f"cached pass {cached_rates[-1]:,.0f} req/s with {cached_sent[-1]} requests sent; "
                f"{client.usage.summary()}"
            )

    med = statistics.median
    speedups = [c / s for c, s in zip(conc_rates, seq_rates, strict=True)]
    print()
    print(
        f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, ideal {ideal:.0f} req/s, "
        f"{args.repeats} trials (median, range)"
    )
    print("| client | requests per trial | req/s | % of ideal | vs sequential | requests sent |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| sequential (`LLMClient`, concurrency 1) | {args.n_seq} | {med(seq_rates):.2f} | "
        f"{med(seq_rates) / ideal:.1%} | 1.00x | {args.n_seq} |"
    )
    print(
        f"| `LLMClient`, concurrency {args.concurrency}, cache on | {args.n} | {med(conc_rates):.1f} | "
        f"**{med(conc_rates) / ideal:.1%}** ({min(conc_rates) / ideal:.1%} to {max(conc_rates) / ideal:.1%}) | "
        f"**{med(speedups):.1f}x** ({min(speedups):.1f}x to {max(speedups):.1f}x) | {args.n} |"
    )
    print(
        f"| same requests again (all cache hits) | {args.n} | {med(cached_rates):,.0f} | - | - | "
        f"**{max(cached_sent)}** |"
    )


if __name__ == "__main__":
    main()
