"""Answers while busy: latency of complete, inspect, is_complete and eval while a long cell runs on the main shell.

    python bench/busy.py                        # ipykernel and ipymini, a 5 s cell, 5 repetitions
    python bench/busy.py --kernels py --cell 3 --reps 3

For each kernel, one client; per repetition, alternating: a `time.sleep(cell)` cell is sent to the main shell,
and 0.5 s later the four requests are sent together, (a) with `quick_requests='subshell'` (the client's quick
subshell, made before the first repetition; then once more one request at a time, "alone", while the cell
still runs) and (b) with `quick_requests='shell'` (behind the cell). Each request's latency is from its send
to its reply (sent together, the later ones include waiting for the earlier ones on the same thread); the
table gives medians over the repetitions, next to the same four requests on an idle kernel (main shell) for
reference, and what making the quick subshell cost.
"""
import argparse, asyncio, os, statistics, time

from conkernel import run_kernel

NAMES = {'python3': 'ipykernel', 'py': 'ipymini'}
KINDS = 'complete', 'inspect', 'is_complete', 'eval'


def requests(kc):
    "The four requests, each a function that sends it (at call time) and gives its awaitable"
    return [lambda: kc.complete('alpha_', reply=True, timeout=60), lambda: kc.inspect('alpha_one', reply=True, timeout=60),
            lambda: kc.is_complete('for x in y:', reply=True, timeout=60), lambda: kc.eval('alpha_one', timeout=60)]


async def timed(send):
    start = time.perf_counter()
    await send()
    return time.perf_counter() - start


async def four(kc): return await asyncio.gather(*[timed(send) for send in requests(kc)])


async def busy(kc, mode, cell):
    kc.quick_requests = mode
    slow = kc.execute(f'import time; time.sleep({cell})', reply=True, subshell_id=None, timeout=cell + 60)
    await asyncio.sleep(0.5)
    times = await four(kc)
    alone = [await timed(send) for send in requests(kc)] if mode == 'subshell' else None  # one at a time, main shell still busy
    assert not slow.future.done() or mode == 'shell', "the cell ended before the subshell answered: use a longer --cell"
    await slow
    return times, alone


async def bench(kernel, cell, reps):
    async with run_kernel(kernel) as (km, kc):
        await kc.execute('alpha_one = 1', reply=True)
        start = time.perf_counter()
        await kc.quick_subshell()
        made = time.perf_counter() - start
        kc.quick_requests = 'shell'
        await four(kc)  # warm up (the completer's first call loads it)
        rows = {'idle kernel, main shell': [], 'busy, quick subshell': [], 'busy, quick subshell, alone': [],
                'busy, main shell': []}
        for _ in range(reps):
            kc.quick_requests = 'shell'
            rows['idle kernel, main shell'].append(await four(kc))
            together, alone = await busy(kc, 'subshell', cell)
            rows['busy, quick subshell'].append(together)
            rows['busy, quick subshell, alone'].append(alone)
            rows['busy, main shell'].append((await busy(kc, 'shell', cell))[0])
    print(f"\n{NAMES.get(kernel, kernel)}: {cell} s cell, {reps} repetitions, {os.cpu_count()} cores; "
          f"making the quick subshell: {made * 1000:.1f} ms")
    print(f"| {'':30} | " + ' | '.join(f'{k:>11}' for k in KINDS) + ' |')
    print(f"|{'-' * 32}|" + '|'.join('-' * 12 + ':' for _ in KINDS) + '|')
    for name, runs in rows.items():
        meds = [statistics.median(r[i] for r in runs) for i in range(len(KINDS))]
        print(f"| {name:30} | " + ' | '.join(f'{m * 1000:8.1f} ms' for m in meds) + ' |')


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--kernels', nargs='+', default=['python3', 'py'])
    ap.add_argument('--cell', type=float, default=5, help="seconds the main shell's cell sleeps")
    ap.add_argument('--reps', type=int, default=5)
    args = ap.parse_args()
    for k in args.kernels: await bench(k, args.cell, args.reps)


if __name__ == '__main__': asyncio.run(main())
