"""conkernel's benchmarks, side by side with jupyter_client's AsyncKernelClient and a raw-pyzmq floor client.

    python bench/run.py [--kernels python3 py] [--reps 3] [--quick] [--chart nbs/images/performance.png]

Every figure is a median over `--reps` repetitions, the clients alternating within each repetition, each
trial on a freshly connected client (so no client pays for parsing another's iopub traffic). Client CPU is
this process's CPU time (user + system, all threads) during the trial divided by its requests.
"""
import argparse, asyncio, gc, json, os, platform, resource, signal, statistics, time, tracemalloc
from pathlib import Path

from clients import CODE, Floor, conkernel_run, plain_client, plain_run
from conkernel import ConKernelClient, DeadKernelError, run_kernel

INFLIGHT = 1, 10, 100, 1000


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def conkernel_client(km):
    return await km.client().start_channels()


async def trial(km, name: str, total: int, inflight: int):
    "One timed run of `total` executes: (seconds, client CPU seconds, per-request latencies or None)"
    info = km.get_connection_info()
    if name == 'floor':
        client = Floor(info)
        requests = client.requests(total)
        await client.run(1, 1)  # connected and warm
        start, cpu = time.perf_counter(), cpu_seconds()
        await client.run(total, inflight, requests)
        secs, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        lat = [b - a for a, b in zip(client.sent_at, client.replied_at)] if inflight == 1 else None
        client.close()
        return secs, cpu, lat
    client = await (conkernel_client(km) if name == 'conkernel' else plain_client(info))
    run = conkernel_run if name == 'conkernel' else plain_run
    try:
        await run(client, 1, 1)
        lat = []
        start, cpu = time.perf_counter(), cpu_seconds()
        if inflight == 1:
            for _ in range(total):
                t = time.perf_counter()
                await run(client, 1, 1)
                lat.append(time.perf_counter() - t)
        else: await run(client, total, inflight)
        return time.perf_counter() - start, cpu_seconds() - cpu, lat or None
    finally: client.stop_channels()


def total_for(inflight: int, quick: bool) -> int:
    return (200 if quick else 1000) * (2 if inflight >= 1000 else 1)


async def throughput(km, kernel: str, reps: int, quick: bool) -> list:
    "Rows for round trip, throughput and CPU per request at each in-flight count"
    rows = []
    for inflight in INFLIGHT:
        names = ['conkernel', 'floor'] + (['plain'] if inflight == 1 else [])
        total, runs = total_for(inflight, quick), {n: [] for n in names}
        for rep in range(reps):
            for name in (names if rep % 2 == 0 else names[::-1]): runs[name].append(await trial(km, name, total, inflight))
        for name, res in runs.items():
            row = dict(kernel=kernel, inflight=inflight, client=name, requests=total,
                       rps=statistics.median(total / s for s, _, _ in res),
                       cpu_us=statistics.median(c / total * 1e6 for _, c, _ in res))
            lats = [l for _, _, lat in res if lat for l in lat]
            if lats:
                lats.sort()
                row.update(rtt_ms=statistics.median(lats) * 1e3, p99_ms=lats[int(len(lats) * 0.99)] * 1e3)
            rows.append(row)
    return rows


FLOOD = 'for i in range({n}): print(i, flush=True)'


async def flood(km, kernel: str, lines: int) -> list:
    "An output flood of `lines` flushed prints: iopub messages per second, routed (conkernel) or counted (floor)"
    kc = await conkernel_client(km)
    try:
        count, last = 0, ''
        start = time.perf_counter()
        async for msg in kc.stream(FLOOD.format(n=lines), timeout=300):
            count += 1
            if msg['msg_type'] == 'stream': last = msg['content']['text']
        secs = time.perf_counter() - start
        assert last.split()[-1] == str(lines - 1), last[-50:]
        rows = [dict(kernel=kernel, metric='flood', client='conkernel', msgs=count, msgs_per_s=count / secs, secs=secs)]
    finally: kc.stop_channels()
    floor = Floor(km.get_connection_info())
    await floor.run(1, 1)
    req = [floor.session.serialize(floor.session.msg('execute_request', dict(code=FLOOD.format(n=lines), silent=False,
           store_history=False, user_expressions={}, allow_stdin=False, stop_on_error=True)))]
    start = time.perf_counter()
    await floor.run(1, 1, req, until_idle=True)
    secs = floor.last_iopub_at - start
    floor.close()
    return rows + [dict(kernel=kernel, metric='flood', client='floor', msgs=floor.iopub_count, msgs_per_s=floor.iopub_count / secs, secs=secs)]


async def settle(waiters):
    "Await `waiters`; then one more loop turn, so the wake-up that carried their results is gone too"
    await asyncio.gather(*waiters)
    await asyncio.sleep(0)


async def memory(km, kernel: str, n: int = 10_000) -> list:
    "Python memory held by the client with `n` executes in flight, and after they complete"
    kc = await conkernel_client(km)
    try:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        waiters = [kc.execute(CODE, reply=True, timeout=600) for _ in range(n)]
        inflight = tracemalloc.get_traced_memory()[0] - base
        await settle(waiters)
        del waiters
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return [dict(kernel=kernel, metric='memory', client='conkernel', inflight=n, inflight_kb=inflight / 1024,
                     after_kb=after / 1024, pending_after=len(kc.pending), iopub_kept=len(kc.router.queues['iopub']),
                     signatures_kept=len(kc.kernel_transport.wire.seen))]
    finally: kc.stop_channels()


async def death(kernel: str, waiting: int = 100, limit: float = 10) -> list:
    "Seconds from kill -9 of the kernel until `waiting` executes have all failed, for a managed and an attached client"
    rows = []
    for how in 'managed', 'attached':
        async with run_kernel(kernel) as (km, kc):
            if how == 'attached':
                kc = ConKernelClient(connection_file=km.connection_file)
                kc.load_connection_file()
                await kc.start_channels()
            waiters = [kc.execute('import time; time.sleep(60)', reply=True, timeout=limit) for _ in range(waiting)]
            await asyncio.sleep(0.2)
            os.kill(km.provisioner.pid, signal.SIGKILL)
            start = time.perf_counter()
            res = await asyncio.gather(*waiters, return_exceptions=True)
            secs = time.perf_counter() - start
            kinds = sorted({type(r).__name__ for r in res})
            rows.append(dict(kernel=kernel, metric='death', client=f'conkernel ({how})', waiting=waiting, secs=secs, errors=kinds))
            if how == 'attached': kc.stop_channels()
    return rows


KERNEL_NAMES = {'python3': 'ipykernel', 'py': 'ipymini'}
CLIENT_NAMES = {'conkernel': 'conkernel', 'plain': 'AsyncKernelClient (one at a time)', 'floor': 'floor (raw pyzmq, unparsed)'}


def chart(rows: list, path: Path):
    "CPU per request and requests/s against requests in flight, per kernel and client, as a PNG"
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tp = [r for r in rows if 'rps' in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, key, label in zip(axes, ('cpu_us', 'rps'), ('client CPU per request (µs)', 'requests/s')):
        for kernel, style in zip(dict.fromkeys(r['kernel'] for r in tp), ('-', '--')):
            for client, color in zip(CLIENT_NAMES, ('tab:blue', 'tab:orange', 'tab:gray')):
                pts = sorted((r['inflight'], r[key]) for r in tp if r['kernel'] == kernel and r['client'] == client)
                if pts: ax.plot(*zip(*pts), style, marker='o', color=color,
                                label=f"{CLIENT_NAMES[client]}, {KERNEL_NAMES.get(kernel, kernel)}")
        ax.set(xscale='log', xlabel='requests in flight', ylabel=label, ylim=(0, None))
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc='lower center', ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"trivial executes, {os.cpu_count()} cores, Python {platform.python_version()} (solid: ipymini, dashed: ipykernel)", fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(rows: list) -> str:
    "The throughput rows as the README's table: each client against the floor, and against AsyncKernelClient one at a time"
    tp = [r for r in rows if 'rps' in r]
    floor = {(r['kernel'], r['inflight']): r for r in tp if r['client'] == 'floor'}
    plain = {r['kernel']: r for r in tp if r['client'] == 'plain'}
    out = ['| kernel | in flight | client | requests/s | CPU µs/request | requests/s vs floor | CPU vs floor | CPU vs AsyncKernelClient | round trip ms |',
           '|---|---:|---|---:|---:|---:|---:|---:|---:|']
    for r in tp:
        f, p = floor[r['kernel'], r['inflight']], plain.get(r['kernel'])
        vs_plain = f"{r['cpu_us'] / p['cpu_us']:.2f}" if p and r['inflight'] == 1 else ''
        rtt = f"{r['rtt_ms']:.2f}" if 'rtt_ms' in r else ''
        out.append(f"| {KERNEL_NAMES.get(r['kernel'], r['kernel'])} | {r['inflight']:,} | {CLIENT_NAMES[r['client']].split(' (')[0]} | "
                   f"{r['rps']:.0f} | {r['cpu_us']:.0f} | {r['rps'] / f['rps']:.2f} | {r['cpu_us'] / f['cpu_us']:.2f} | {vs_plain} | {rtt} |")
    return '\n'.join(out)


def table(rows: list) -> str:
    "The results as text tables"
    out = [f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"]
    tp = [r for r in rows if 'rps' in r]
    if tp:
        out.append(f"\n{'kernel':8} {'in flight':>9} {'client':10} {'req/s':>8} {'CPU us/req':>10} {'vs floor req/s':>14} "
                   f"{'vs floor CPU':>12} {'rtt ms':>7} {'p99 ms':>7}")
        floor = {(r['kernel'], r['inflight']): r for r in tp if r['client'] == 'floor'}
        for r in tp:
            f = floor[r['kernel'], r['inflight']]
            rtt = f"{r['rtt_ms']:7.2f} {r['p99_ms']:7.2f}" if 'rtt_ms' in r else ''
            out.append(f"{r['kernel']:8} {r['inflight']:>9} {r['client']:10} {r['rps']:8.0f} {r['cpu_us']:10.0f} "
                       f"{r['rps'] / f['rps']:14.2f} {r['cpu_us'] / f['cpu_us']:12.2f} {rtt}")
    for r in rows:
        if r.get('metric') == 'flood':
            out.append(f"flood    {r['kernel']:8} {r['client']:10} {r['msgs']} iopub messages in {r['secs']:.2f} s: {r['msgs_per_s']:.0f} msgs/s")
        elif r.get('metric') == 'memory':
            out.append(f"memory   {r['kernel']:8} {r['inflight']} in flight: {r['inflight_kb']:.0f} KiB "
                       f"({r['inflight_kb'] * 1024 / r['inflight']:.0f} B each); after completion: {r['after_kb']:.0f} KiB, "
                       f"{r['pending_after']} pending (kept by design: {r['iopub_kept']} unread iopub messages, "
                       f"{r['signatures_kept']} signatures for the replay check)")
        elif r.get('metric') == 'death':
            out.append(f"death    {r['kernel']:8} {r['client']}: {r['waiting']} waiters failed {r['secs']:.2f} s after kill -9 with {r['errors']}")
    return '\n'.join(out)


async def main(kernels, reps, quick):
    rows = []
    for kernel in kernels:
        async with run_kernel(kernel) as (km, kc):
            kc.stop_channels()
            rows += await throughput(km, kernel, reps, quick)
            rows += await flood(km, kernel, 10_000 if quick else 100_000)
            if kernel != 'python3':  # ipykernel 7.4 stops answering with about 4,000 requests pipelined
                rows += await memory(km, kernel, 1000 if quick else 10_000)
        rows += await death(kernel)
    return rows


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--kernels', nargs='+', default=['python3', 'py'], help='kernelspecs to run (ipykernel, ipymini)')
    p.add_argument('--reps', type=int, default=3, help='repetitions per figure (the median is reported)')
    p.add_argument('--quick', action='store_true', help='fewer requests: a smoke run')
    p.add_argument('--chart', type=Path, default=Path(__file__).parent.parent/'nbs'/'images'/'performance.png',
                   help='where to draw the throughput figures (PNG)')
    args = p.parse_args()
    rows = asyncio.run(main(args.kernels, args.reps, args.quick))
    print(table(rows))
    print(markdown(rows))
    out = Path(__file__).parent/'results'
    out.mkdir(exist_ok=True)
    (out/'latest.json').write_text(json.dumps(rows, indent=1))
    chart(rows, args.chart)
    print(f"chart: {args.chart}")
