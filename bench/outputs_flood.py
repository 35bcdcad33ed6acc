"""Time a `run()` that prints N flushed lines while a second request prints beside it on a subshell.

Usage: PYTHONPATH=. python bench/outputs_flood.py [kernel ...] [--lines N] [--reps R] [--keep-msgs]
Reports, per kernel, the wall time of the flood, the client's CPU time, and the client's peak RSS growth."""
import argparse, asyncio, resource, time

from conkernel import run_kernel


def rss_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def flood_once(kc, sub, lines, keep_msgs):
    cpu0, t0 = time.process_time(), time.monotonic()
    flood = kc.run(f'for i in range({lines}): print(i, flush=True)', keep_msgs=keep_msgs)
    beside = kc.run('import time\nfor i in range(200): print("beside", i, flush=True); time.sleep(0.001)', subshell_id=sub)
    flood, beside = await asyncio.gather(flood, beside)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    assert flood.stdout == ''.join(f'{i}\n' for i in range(lines)), 'flood lost or reordered lines'
    assert beside.stdout == ''.join(f'beside {i}\n' for i in range(200)), 'beside lost or reordered lines'
    return wall, cpu


async def main(kernels, lines, reps, keep_msgs):
    for kernel in kernels:
        async with run_kernel(kernel) as (km, kc):
            sub = (await kc._request('control', 'create_subshell_request', {}, reply=True))['content']['subshell_id']
            rss0 = rss_mb()
            times = sorted([await flood_once(kc, sub, lines, keep_msgs) for _ in range(reps)])
            wall, cpu = times[len(times) // 2]
            print(f"{kernel}{' keep_msgs' if keep_msgs else ''}: {lines:,} lines + 200 beside, median of {reps}: {wall:.2f} s wall, "
                  f"{cpu:.2f} s client CPU ({cpu / lines * 1e6:.1f} us/line), peak RSS +{rss_mb() - rss0:.0f} MB, "
                  f"iopub queue {len(kc.router.queues['iopub'])} msgs (max_queued {kc.max_queued})")


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('kernels', nargs='*', default=['python3', 'py'])
    p.add_argument('--lines', type=int, default=100_000)
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--keep-msgs', action='store_true')
    a = p.parse_args()
    asyncio.run(main(a.kernels, a.lines, a.reps, a.keep_msgs))
