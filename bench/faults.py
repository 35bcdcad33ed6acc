"""Faults and what callers see: one row per fault, with the time until every waiter heard, replies lost and
delivered twice, and what was left behind (requests in the router, child processes, file descriptors).

    python bench/faults.py [--stall 45]

--stall: seconds the websocket stalls in the stall row (longer than the client's keepalive, about 40 s, makes
the client drop and reopen the websocket itself; the default 2 s cuts the connection after the stall).
"""
import argparse, asyncio, gc, os, platform, signal, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tests'))
from proxy import Proxy
from conkernel import ConnectionLostError, run_kernel
from conkernel.testing import LocalServer

SLEEP = 'import time; time.sleep(60)'


def children() -> int:
    return sum(len((t/'children').read_text().split()) for t in Path('/proc/self/task').iterdir())


def fds() -> int: return len(os.listdir('/proc/self/fd'))


def rss_mb() -> float: return int(Path('/proc/self/statm').read_text().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def values(results) -> list: return [r['content']['user_expressions']['v']['data']['text/plain'] for r in results if isinstance(r, dict)]


async def waited(waiters, bound=120):
    "Seconds until every waiter ended, and their results"
    start = time.perf_counter()
    res = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), bound)
    return time.perf_counter() - start, res


def numbered(kc, n, code='import time; time.sleep({s}); v = {i}', s=0.0):
    return [kc.execute(code.format(i=i, s=s), user_expressions={'v': 'v'}, reply=True, timeout=None) for i in range(n)]


def row(fault, heard, results, kc, expect, note=''):
    vals = values(results)
    errors = sorted({type(r).__name__ for r in results if isinstance(r, BaseException)})
    return dict(fault=fault, heard_s=heard, replies=len(vals), errors='/'.join(errors) or '-',
                lost=sum(isinstance(r, ConnectionLostError) for r in results), twice=len(vals) - len(set(vals)),
                pending=len(kc.pending), expect=expect, note=note)


async def kill_local():
    async with run_kernel() as (km, kc):
        waiters = [kc.execute(SLEEP, reply=True, timeout=None) for _ in range(100)]
        await asyncio.sleep(0.5)
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        heard, res = await waited(waiters)
        start = time.perf_counter()
        await km.restart_kernel()
        ok = (await kc.execute('1', reply=True))['content']['status']
        return row('kill -9, 100 waiting (local)', heard, res, kc, 'DeadKernelError',
                   f'restart_kernel() to a ready client {time.perf_counter() - start:.2f} s ({ok})')


async def freeze_local(heartbeat_timeout=3.0):
    async with run_kernel() as (km, kc):
        pid = km.provisioner.process.pid
        waiters = [kc.execute(SLEEP, reply=True, timeout=None) for _ in range(20)] + [kc.run(SLEEP)]
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGSTOP)
        heard, res = await waited(waiters)
        os.kill(pid, signal.SIGCONT)
        start = time.perf_counter()
        while kc.router.closed is not None: await asyncio.sleep(0.05)
        back = time.perf_counter() - start
        await kc.interrupt()
        return row(f'SIGSTOP, 21 waiting (local, heartbeat_timeout={heartbeat_timeout:g})', heard, res, kc,
                   'KernelUnresponsiveError', f'after SIGCONT the client took requests again in {back:.2f} s')


async def websocket(server, fault, stall):
    proxy = await Proxy(int(server.url.rsplit(':', 1)[1])).start()
    try:
        async with run_kernel(url=proxy.url, token=server.token) as (km, kc):
            waiters = numbered(kc, 20, s=0.2)
            await asyncio.sleep(0.3)
            if fault == 'cut': proxy.cut()
            else:
                proxy.mode = 'blackhole'
                await asyncio.sleep(stall)
                proxy.mode = 'pass'
                if kc.stats['websocket_dropped'] == 0: proxy.cut()
            heard, res = await waited(waiters, 120 + stall)
            await asyncio.gather(*kc.kernel_transport.barriers)
            label = 'cut' if fault == 'cut' else f'stalled {stall:g} s' + (', then cut' if stall < 40 else '')
            return row(f'websocket {label}, 20 queued (Jupyter Server)', heard, res, kc,
                       'replies, or ConnectionLostError', f"drops seen: {kc.stats['websocket_dropped']}")
    finally: await proxy.close()


async def memory():
    async with run_kernel() as (km, kc):
        gc.collect()
        before = rss_mb()
        for _ in range(30):
            res = await kc.run('print("x" * 8_000_000)')
            assert len(res.stdout) == 8_000_001
            del res
        gc.collect()
        held = kc.router.queues['iopub'].nbytes / 2**20
        return dict(fault='30 x 8 MB outputs, results dropped', heard_s=0, replies=30, errors='-', lost=0, twice=0,
                    pending=len(kc.pending), expect='bounded',
                    note=f'RSS {before:.0f} -> {rss_mb():.0f} MB; iopub queue holds {held:.1f} MB (max_queued_bytes 32 MB)')


async def main(stall):
    rows, kids, handles = [], children(), fds()
    rows.append(await kill_local())
    rows.append(await freeze_local())
    with LocalServer('server') as server:
        rows.append(await websocket(server, 'cut', 0))
        rows.append(await websocket(server, 'stall', stall))
    rows.append(await memory())
    await asyncio.sleep(0.5)
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, ipykernel")
    print('| fault | callers heard (s) | replies | errors | lost | twice | pending | expected | notes |')
    print('|---|---:|---:|---|---:|---:|---:|---|---|')
    for r in rows:
        print(f"| {r['fault']} | {r['heard_s']:.3f} | {r['replies']} | {r['errors']} | {r['lost']} | {r['twice']} | "
              f"{r['pending']} | {r['expect']} | {r['note']} |")
    print(f"left behind: {children() - kids} child processes, {fds() - handles} file descriptors")


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--stall', type=float, default=2, help='seconds the websocket stalls (45: past the keepalive)')
    asyncio.run(main(p.parse_args().stall))
