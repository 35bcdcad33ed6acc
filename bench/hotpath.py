"""Where a live client's CPU goes per request: conkernel's hot-path steps, the event loop around them, and the floor's.

    python bench/hotpath.py [--kernel py] [--inflight 100] [--requests 2000] [--reps 3]

The notebook's profile (`nbs/03_transport.ipynb`) times each step alone, warm; here the steps run as they do in
use, between wake-ups, with the kernel on the same cores. Each step is timed with the main thread's CPU clock
on this client only (its own methods, wrapped on the instance), so the figures include the clock's own cost.
"""
import argparse, asyncio, statistics, sys, time

from clients import Floor, conkernel_run
from conkernel import run_kernel


class Counted:
    "Main-thread CPU seconds and calls per step, and the event loop's wake-ups (blocking selects) and turns"
    def __init__(self): self.cpu, self.calls = {}, {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.thread_time()
            try: return fn(*args, **kwargs)
            finally:
                self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - start
                self.calls[name] = self.calls.get(name, 0) + 1
        return timed

    def watch_loop(self, loop):
        "Count the loop's selects, told apart by whether they may block"
        selector = loop._selector
        select = selector.select
        def counted(timeout=None):
            kind = 'loop turn' if timeout == 0 else 'wake-up'
            self.calls[kind] = self.calls.get(kind, 0) + 1
            return select(timeout)
        selector.select = counted
        return lambda: delattr(selector, 'select')


async def conkernel_trial(km, total: int, inflight: int) -> dict:
    counted = Counted()
    kc = await km.client().start_channels()
    try:
        await conkernel_run(kc, 100, 10)  # warm
        transport = kc.kernel_transport
        kc._request = counted.wrap('build, register, sign, send', kc._request)
        transport.send = counted.wrap('sign, send', transport.send)
        transport.wire.parse = counted.wrap('check, parse', transport.wire.parse)
        kc.connection.deliver = counted.wrap('route', kc.connection.deliver)
        transport.drain = counted.wrap('drain', transport.drain)
        for name, sock in transport.sockets.items(): transport.loop.add_reader(sock.FD, transport.drain, name)  # replaces start's reader
        unwatch = counted.watch_loop(asyncio.get_running_loop())
        start = time.thread_time()
        try: await conkernel_run(kc, total, inflight)
        finally: unwatch()
        main = time.thread_time() - start
    finally: kc.stop_channels()
    cpu, calls = counted.cpu, counted.calls
    steps = {'build, register': cpu['build, register, sign, send'] - cpu['sign, send'], 'sign, send': cpu['sign, send'],
             'receive': cpu['drain'] - cpu['check, parse'] - cpu['route'], 'check, parse': cpu['check, parse'],
             'route': cpu['route']}
    steps['event loop, wake-ups, callers'] = main - sum(steps.values())
    return dict(main=main, steps=steps, calls=calls)


async def floor_trial(km, total: int, inflight: int) -> dict:
    counted, floor = Counted(), Floor(km.get_connection_info())
    try:
        requests = floor.requests(total)
        await floor.run(1, 1)
        unwatch = counted.watch_loop(asyncio.get_running_loop())
        start = time.thread_time()
        try: await floor.run(total, inflight, requests)
        finally: unwatch()
        main = time.thread_time() - start
    finally: floor.close()
    return dict(main=main, steps={}, calls=counted.calls)


async def main(kernel: str, inflight: int, total: int, reps: int):
    runs = {'conkernel': [], 'floor': []}
    async with run_kernel(kernel) as (km, kc):
        kc.stop_channels()
        for rep in range(reps):
            for name in (('conkernel', 'floor') if rep % 2 == 0 else ('floor', 'conkernel')):
                runs[name].append(await (conkernel_trial if name == 'conkernel' else floor_trial)(km, total, inflight))
    us = lambda secs: secs / total * 1e6
    print(f"{kernel}, {inflight} in flight, {total} requests, median of {reps}: main-thread CPU µs per request")
    for name, res in runs.items():
        print(f"{name}: {statistics.median(us(r['main']) for r in res):.0f} µs")
        for step in res[0]['steps']:
            print(f"  {step:32} {statistics.median(us(r['steps'][step]) for r in res):6.1f} µs")
        for what in ('wake-up', 'loop turn'):
            print(f"  {what + 's per request':32} {statistics.median(r['calls'].get(what, 0) / total for r in res):6.2f}")


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--kernel', default='py', help='kernelspec (py: ipymini, python3: ipykernel)')
    p.add_argument('--inflight', type=int, default=100)
    p.add_argument('--requests', type=int, default=2000)
    p.add_argument('--reps', type=int, default=3)
    a = p.parse_args()
    asyncio.run(main(a.kernel, a.inflight, a.requests, a.reps))
