"""Bad input from the wire: the fake kernel (tests/fakekernel.py) sends one bad message of each kind before each
true reply, all requests in flight together. Prints how many true replies reached their callers and the counts."""
import asyncio, logging, os, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests'))
from conkernel import ConKernelClient
from fakekernel import FakeKernel


async def main(rounds=100):
    fk = FakeKernel()
    kc = ConKernelClient(max_message_size=100_000)
    kc.load_connection_info(fk.connection_info)
    await kc.start_channels()
    try:
        start = time.monotonic()
        replies = await asyncio.gather(*[kc.execute(k, reply=True, timeout=60) for _ in range(rounds) for k in FakeKernel.BAD])
        took = time.monotonic() - start
        await asyncio.sleep(0.3)  # let the iopub copies arrive
        good = sum(r['content']['status'] == 'ok' for r in replies)
        print(f"{len(replies)} requests, each preceded by a bad message: {good} true replies reached their callers "
              f"in {took:.2f} s; {len(kc.pending)} pending")
        print(dict(kc.stats))
    finally:
        kc.stop_channels()
        fk.stop()

if __name__ == '__main__':
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(*map(int, sys.argv[1:])))
