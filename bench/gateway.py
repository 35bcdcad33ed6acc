"""Throughput and client CPU per request through a Kernel Gateway / Jupyter Server, next to direct ZMQ.

    python bench/gateway.py [--apps kernelgateway server] [--inflight 100] [--total 1000] [--reps 3]

The same kernelspec (default ipykernel, `python3`) is driven by conkernel directly over ZMQ (with CurveZMQ, the
default where available, and without) and through each server on
127.0.0.1 with both websocket framings (v1 binary and JSON), the clients alternating within each repetition,
each trial on a freshly connected client. Figures are medians over `--reps`. Client CPU is this process's CPU
time (user + system) during the trial divided by its requests; server CPU is the gateway process's, likewise (it
signs and checks the ZMQ messages that a direct client handles itself).
"""
import argparse, asyncio, json, os, platform, statistics, time
from pathlib import Path

from clients import conkernel_run
from conkernel import run_kernel
from conkernel.gateway import run_gateway_kernel
from conkernel.testing import LocalServer
from run import cpu_seconds


def process_cpu(pid: int | None) -> float:
    "CPU seconds (user + system) used so far by process `pid` (0 for None)"
    if pid is None: return 0.0
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


async def trial(kc_factory, server_pid, total: int, inflight: int):
    "(seconds, client CPU seconds, server CPU seconds) for `total` executes"
    kc = await kc_factory()
    try:
        await conkernel_run(kc, 10, 10)  # connected and warm
        start, cpu, server = time.perf_counter(), cpu_seconds(), process_cpu(server_pid)
        await conkernel_run(kc, total, inflight)
        return time.perf_counter() - start, cpu_seconds() - cpu, process_cpu(server_pid) - server
    finally: await kc.astop_channels()


async def bench(kernel: str, apps, inflight: int, total: int, reps: int) -> list:
    servers = [LocalServer(app) for app in apps]
    try:
        async with run_kernel(kernel) as (lkm, lkc), run_kernel(kernel, transport_encryption='disabled') as (pkm, pkc):
            for kc in lkc, pkc: await kc.astop_channels()  # an idle client would also parse every iopub message
            targets = {'direct ZMQ': (lambda: lkm.client().start_channels(), None),
                       'direct ZMQ, no curve': (lambda: pkm.client().start_channels(), None)}
            managers = []
            for srv in servers:
                for framing in 'v1', 'json':
                    cm = run_gateway_kernel(srv.url, kernel, token=srv.token, ws_protocol=framing)
                    km, kc = await cm.__aenter__()
                    await kc.astop_channels()
                    managers.append(cm)
                    targets[f'{srv.app} {framing}'] = (lambda km=km: km.client().start_channels()), srv.proc.pid
            try:
                runs = {name: [] for name in targets}
                for rep in range(reps):
                    order = list(targets) if rep % 2 == 0 else list(targets)[::-1]
                    for name in order: runs[name].append(await trial(*targets[name], total, inflight))
            finally:
                for cm in managers: await cm.__aexit__(None, None, None)
    finally:
        for srv in servers: srv.stop()
    rows = [dict(client=name, kernel=kernel, inflight=inflight, requests=total,
                 rps=statistics.median(total / s for s, _, _ in res), cpu_us=statistics.median(c / total * 1e6 for _, c, _ in res),
                 server_cpu_us=statistics.median(c / total * 1e6 for _, _, c in res))
            for name, res in runs.items()]
    direct = rows[0]
    for r in rows: r.update(ratio_rps=r['rps'] / direct['rps'], ratio_cpu=r['cpu_us'] / direct['cpu_us'])
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--kernel', default='python3', help='kernelspec (python3: ipykernel, py: ipymini)')
    p.add_argument('--apps', nargs='+', default=['kernelgateway', 'server'])
    p.add_argument('--inflight', type=int, default=100)
    p.add_argument('--total', type=int, default=1000)
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--json', help='also write the rows to this file')
    a = p.parse_args()
    rows = asyncio.run(bench(a.kernel, a.apps, a.inflight, a.total, a.reps))
    print(f"{platform.node()}: {os.cpu_count()} cores; kernel {a.kernel}, {a.inflight} in flight, {a.total} requests, median of {a.reps}")
    print(f"{'client':<24}{'req/s':>9}{'CPU µs/req':>12}{'rps vs direct':>15}{'CPU vs direct':>15}{'server CPU µs/req':>19}")
    for r in rows:
        print(f"{r['client']:<24}{r['rps']:>9.0f}{r['cpu_us']:>12.0f}{r['ratio_rps']:>15.2f}{r['ratio_cpu']:>15.2f}"
              f"{r['server_cpu_us']:>19.0f}")
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == '__main__': main()
