"""How fast waiters learn that their kernel died: kill -9 of an ipykernel with N executes waiting.

Owned: the client's manager started the kernel (process watch). Elsewhere: a second client connected from the
connection file, with no manager (heartbeat). Prints each repetition and the medians."""
import asyncio, os, signal, statistics, sys, time

from conkernel import ConKernelClient, DeadKernelError, run_kernel


async def once(n):
    async with run_kernel() as (km, kc):
        other = ConKernelClient(connection_file=km.connection_file)
        other.load_connection_file()
        await other.start_channels()
        try:
            waits = {c: [c.execute('import time; time.sleep(60)', reply=True)] + [c.execute('1', reply=True) for _ in range(n - 1)]
                     for c in (kc, other)}
            await asyncio.sleep(0.5)
            async def failed(ws):
                res = await asyncio.gather(*ws, return_exceptions=True)
                assert all(isinstance(r, DeadKernelError) for r in res), {type(r) for r in res}
                return time.monotonic()
            tasks = {c: asyncio.ensure_future(failed(ws)) for c,ws in waits.items()}
            start = time.monotonic()
            os.kill(km.provisioner.process.pid, signal.SIGKILL)
            return [await tasks[c] - start for c in (kc, other)]
        finally: other.stop_channels()


async def main(n=100, reps=5):
    rows = []
    for i in range(reps):
        rows.append(await once(n))
        print(f"rep {i}: owned {rows[-1][0]*1000:.1f} ms, elsewhere (heartbeat) {rows[-1][1]:.2f} s", flush=True)
    print(f"median over {reps}, {n} waiting, ipykernel, {os.cpu_count()} cores: owned {statistics.median(r[0] for r in rows)*1000:.1f} ms,"
          f" elsewhere {statistics.median(r[1] for r in rows):.2f} s")

if __name__ == '__main__': asyncio.run(main(*map(int, sys.argv[1:])))
