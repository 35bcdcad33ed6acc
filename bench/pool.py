"""KernelPool figures: warm vs cold, many starts at once, many kernels from one process, churn.

    python bench/pool.py                      # every section
    python bench/pool.py --only warm --reps 7
    python bench/pool.py --only churn --cycles 200

- warm: time from asking to a ready client, and to the first result (`1+1`), from a warm pool (size 1, restart
  on return; the pool is refilled before each repetition) vs a cold start (`run_kernel`), alternating; medians.
- starts: `--starts` kernels started at once (a pool of that size, all starting together): failures and time.
- many: `--many` kernels with `--inflight` executes in flight on each, from this one process: aggregate
  requests/s and this process's CPU per request, next to one kernel driven the same way.
- churn: `--cycles` acquire/return cycles with restart: processes, FDs, threads and memory during and after.
"""
import argparse, asyncio, os, resource, statistics, threading, time

import psutil

from conkernel import KernelPool, run_kernel

NAMES = {'python3': 'ipykernel', 'py': 'ipymini'}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children() -> int: return sum(p.status() != psutil.STATUS_ZOMBIE for p in psutil.Process().children(recursive=True))


async def settled(pool):
    await pool.ready(timeout=120)
    while pool.stats['restarting'] or pool.stats['starting'] or pool.stats['warm'] < pool.size: await asyncio.sleep(0.01)


async def warm_vs_cold(kernel, reps):
    cold, warm = [], []
    async with KernelPool(kernel, size=1, max_kernels=2) as pool:
        for _ in range(reps):
            t = time.perf_counter()
            async with run_kernel(kernel) as (km, kc):
                ready = time.perf_counter() - t
                await kc.execute('1+1', reply=True)
                cold.append((ready, time.perf_counter() - t))
            await settled(pool)
            t = time.perf_counter()
            async with pool.kernel() as kc:
                ready = time.perf_counter() - t
                await kc.execute('1+1', reply=True)
                warm.append((ready, time.perf_counter() - t))
    med = lambda rows, i: statistics.median(r[i] for r in rows)
    print(f"{NAMES.get(kernel, kernel)}: ready client cold {med(cold, 0)*1e3:.0f} ms, warm {med(warm, 0)*1e3:.3f} ms "
          f"({med(cold, 0)/med(warm, 0):,.0f}x); first result cold {med(cold, 1)*1e3:.0f} ms, warm {med(warm, 1)*1e3:.2f} ms "
          f"({med(cold, 1)/med(warm, 1):,.0f}x); medians of {reps}", flush=True)


async def many_starts(kernel, n):
    t = time.perf_counter()
    async with KernelPool(kernel, size=n, max_kernels=n, max_starting=n, max_start_failures=n + 1, backoff=0.1) as pool:
        await pool.ready(timeout=600)
        took = time.perf_counter() - t
        s = pool.stats
        async def ask():
            async with pool.kernel() as kc: return (await kc.execute('1', reply=True))['content']['status']
        answered = sum(r == 'ok' for r in await asyncio.gather(*[ask() for _ in range(n)]))
    print(f"{NAMES.get(kernel, kernel)}: {n} kernels started at once: {s['failed']} failed starts, all {s['warm']} warm after "
          f"{took:.1f} s; {answered}/{n} answered", flush=True)


async def drive(kcs, inflight, total):
    "`total` executes on each client, `inflight` at a time; (requests/s, CPU µs/request)"
    async def lane(kc, n):
        for _ in range(n): await kc.execute('1', reply=True)
    c, t = cpu(), time.perf_counter()
    await asyncio.gather(*[lane(kc, total // inflight) for kc in kcs for _ in range(inflight)])
    wall, used, n = time.perf_counter() - t, cpu() - c, len(kcs) * (total // inflight) * inflight
    return n / wall, used / n * 1e6


async def many_kernels(kernel, n, inflight, total, reps):
    rows = {1: [], n: []}
    async with KernelPool(kernel, size=n, max_kernels=n, max_starting=4) as pool:
        await pool.ready(timeout=600)
        held = [pool.kernel() for _ in range(n)]
        kcs = [await h.__aenter__() for h in held]
        try:
            await drive(kcs, inflight, inflight * 10)  # warm-up
            for _ in range(reps):
                for k in (1, n): rows[k].append(await drive(kcs[:k], inflight, total))
        finally:
            for h in held: await h.__aexit__(None, None, None)
    for k in (1, n):
        print(f"{NAMES.get(kernel, kernel)}: {k} kernel{'s' if k > 1 else ''} x {inflight} in flight: "
              f"{statistics.median(r[0] for r in rows[k]):,.0f} requests/s, client CPU "
              f"{statistics.median(r[1] for r in rows[k]):.0f} µs/request (medians of {reps}, {total} requests per kernel)", flush=True)


async def churn(kernel, cycles):
    proc = psutil.Process()
    before = (children(), len(os.listdir('/proc/self/fd')), threading.active_count())
    async with KernelPool(kernel, size=2, max_kernels=3) as pool:
        await pool.ready(timeout=120)
        marks = {}
        t = time.perf_counter()
        for i in range(1, cycles + 1):
            async with pool.kernel() as kc: assert (await kc.execute(f'x = {i}', reply=True))['content']['status'] == 'ok'
            if i in (min(100, cycles), cycles) or i % 250 == 0:
                marks[i] = (proc.memory_info().rss / 2**20, len(os.listdir('/proc/self/fd')), threading.active_count(), children())
        took = time.perf_counter() - t
        s = pool.stats
    after = (children(), len(os.listdir('/proc/self/fd')), threading.active_count())
    print(f"{NAMES.get(kernel, kernel)}: {cycles} acquire/return cycles with restart in {took:.0f} s "
          f"({s['restarted']} restarts, {s['started']} starts, {s['failed']} failed)")
    for i, (rss, fd, th, ch) in marks.items(): print(f"  after {i:>5} cycles: RSS {rss:.1f} MiB, {fd} FDs, {th} threads, {ch} kernel processes")
    print(f"  before: {before[0]} child processes, {before[1]} FDs, {before[2]} threads; after aclose: "
          f"{after[0]} child processes, {after[1]} FDs, {after[2]} threads", flush=True)


async def main(a):
    kernels = a.kernels.split(',')
    print(f"{os.cpu_count()} cores; kernels {', '.join(NAMES.get(k, k) for k in kernels)}", flush=True)
    if a.only in (None, 'warm'):
        for k in kernels: await warm_vs_cold(k, a.reps)
    if a.only in (None, 'starts'):
        for k in kernels: await many_starts(k, a.starts)
    if a.only in (None, 'many'):
        for k in kernels: await many_kernels(k, a.many, a.inflight, a.requests, a.reps)
    if a.only in (None, 'churn'): await churn(a.churn_kernel, a.cycles)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', choices=['warm', 'starts', 'many', 'churn'])
    p.add_argument('--kernels', default='python3,py', help="kernelspecs, comma-separated")
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--starts', type=int, default=50, help="kernels started at once")
    p.add_argument('--many', type=int, default=16, help="kernels driven at once")
    p.add_argument('--inflight', type=int, default=10, help="requests in flight per kernel")
    p.add_argument('--requests', type=int, default=500, help="requests per kernel per repetition")
    p.add_argument('--cycles', type=int, default=1000, help="acquire/return cycles of the churn section")
    p.add_argument('--churn-kernel', default='py')
    asyncio.run(main(p.parse_args()))
