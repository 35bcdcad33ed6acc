"""Time a burst of 280 mixed concurrent requests (40 each of seven kinds) on ipykernel and ipymini, and the
latency of a `complete` sent while an `execute_interactive` runs (jupyter_client issue #429).
Run: PYTHONPATH=. python bench/requests_burst.py"""
import asyncio, os, random, resource, statistics, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests'))
from conkernel import run_kernel
from test_requests import KINDS, check, prepare_burst, send

def cpu(): r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime

async def burst(kc):
    calls = [(kind, i) for kind in KINDS for i in range(40)]
    random.shuffle(calls)
    t, c = time.perf_counter(), cpu()
    replies = await asyncio.gather(*[send(kc, kind, i) for kind, i in calls])
    t, c = time.perf_counter() - t, cpu() - c
    for (kind, i), r in zip(calls, replies): check(kc, kind, i, r)
    return t, c / len(calls)

async def issue_429(kc):
    run = asyncio.ensure_future(kc.execute_interactive('import time; time.sleep(0.3)', output_hook=lambda m: None))
    await asyncio.sleep(0.05)
    t = time.perf_counter()
    await kc.complete('beta_1_', reply=True)
    t = time.perf_counter() - t
    await run
    return t

async def main(reps=5):
    print(f'{os.cpu_count()} cores')
    for kernel in ['python3', 'py']:
        async with run_kernel(kernel) as (km, kc):
            await prepare_burst(kc, 40)
            runs = [await burst(kc) for _ in range(reps)]
            lat = [await issue_429(kc) for _ in range(reps)]
        print(f'{kernel}: 280 mixed requests in flight: median {statistics.median(r[0] for r in runs)*1000:.0f} ms, '
              f'client CPU {statistics.median(r[1] for r in runs)*1e6:.0f} us/request; '
              f'#429 complete while a 0.3 s execute_interactive runs: median {statistics.median(lat)*1000:.0f} ms')

asyncio.run(main())
