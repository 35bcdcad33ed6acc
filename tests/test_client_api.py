"jupyter_client's channel API on ConKernelClient: what code written for jupyter_client reads, it reads the same way."
import asyncio
from queue import Empty

import pytest

from conkernel import run_kernel


async def test_get_msgs_drains_within_the_byte_bound():
    "`Channel.get_msgs` empties the queue's byte count too: reading with it keeps every later message"
    async with run_kernel() as (km, _):
        kc = await km.client(max_queued_bytes=200_000).start_channels()
        got = 0
        for _ in range(30):  # 30 outputs of 20 kB, drained as they come: 600 kB in all through a 200 kB queue
            await kc.execute('print("x" * 20_000)', reply=True)
            await asyncio.sleep(0.05)  # the idle status comes after the reply
            got += sum(m['msg_type'] == 'stream' for m in await kc.iopub_channel.get_msgs())
        q = kc.router.queues['iopub']
        await kc.astop_channels()
        assert (got, q.nbytes, q.dropped) == (30, 0, 0)


@pytest.mark.parametrize('kernel', ['python3'])
async def test_iopub_welcome_is_readable_after_start_channels(kernel):
    "JEP 65: a kernel's welcome to the subscriber stays for `get_iopub_msg`; nothing else from the start-up does"
    async with run_kernel(kernel) as (km, kc):
        welcome = await kc.get_iopub_msg(timeout=5)
        assert (welcome['msg_type'], welcome['content']['subscription']) == ('iopub_welcome', '')
        with pytest.raises(Empty): await kc.get_iopub_msg(timeout=0.2)
        await kc.reconnect()  # a fresh subscription: welcomed again
        assert (await kc.get_iopub_msg(timeout=5))['msg_type'] == 'iopub_welcome'
        await kc.reconnect()
        await kc.wait_for_ready()  # as jupyter_client's: drops whatever start-up left, the welcome too
        with pytest.raises(Empty): await kc.get_iopub_msg(timeout=0.2)


async def test_a_paused_heartbeat_counts_no_silence():
    "jupyter_client's HBChannel API: `pause`, `unpause`, `is_beating`; paused, a stopped kernel fails no one"
    import os, signal
    from conkernel import KernelUnresponsiveError
    async with run_kernel() as (km, _):
        kc = await km.client(heartbeat_timeout=1).start_channels()
        pid = km.provisioner.process.pid
        try:
            kc.hb_channel.start()
            kc.hb_channel.pause()
            assert not kc.hb_channel.is_beating()
            os.kill(pid, signal.SIGSTOP)
            waiter = kc.execute('1', reply=True, timeout=None)
            await asyncio.sleep(2.5)
            assert kc.router.closed is None and not waiter.future.done()
            kc.hb_channel.unpause()
            with pytest.raises(KernelUnresponsiveError): await asyncio.wait_for(waiter, 10)
        finally:
            os.kill(pid, signal.SIGCONT)
            await kc.astop_channels()
