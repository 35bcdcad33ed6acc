"jupyter_client's channel API on ConKernelClient: what code written for jupyter_client reads, it reads the same way."
import asyncio
from queue import Empty

import pytest

from conkernel import ConKernelManager, run_kernel


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


async def test_iopub_welcome_is_readable_after_start_channels():
    "JEP 65: start_channels not awaited (as jupyter_client's) leaves the kernel's welcome for get_iopub_msg; awaited, it waits and drops the start-up messages"
    km = ConKernelManager()
    await km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        welcome = await kc.get_iopub_msg(timeout=10)
        assert (welcome['msg_type'], welcome['content']['subscription']) == ('iopub_welcome', '')
        await kc.reconnect()  # awaited: the kernel answered, and what start-up left is dropped
        with pytest.raises(Empty): await kc.get_iopub_msg(timeout=0.2)
        await kc.astop_channels()
    finally: await km.shutdown_kernel(now=True)


def test_the_blocking_clients_start_channels_waits_for_nothing():
    "As jupyter_client's BlockingKernelClient: start_channels, then the welcome; wait_for_ready drops what start-up left"
    from conkernel.blocking import BlockingConKernelClient, LoopThread
    lt = LoopThread()
    async def start():
        km = ConKernelManager()
        await km.start_kernel()
        return km
    km = lt.call(start())
    try:
        kc = BlockingConKernelClient(lt.call(_made(km.client)), lt)
        kc.start_channels()
        assert kc.get_iopub_msg(timeout=10)['msg_type'] == 'iopub_welcome'
        kc.wait_for_ready(timeout=30)
        with pytest.raises(Empty): kc.get_iopub_msg(timeout=0.2)
        kc.stop_channels()
    finally:
        lt.call(km.shutdown_kernel(now=True))
        lt.stop()


async def _made(factory): return factory()


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


async def test_a_request_on_a_client_never_started_starts_its_channels():
    "As jupyter_client's channels start on first use: `km.client().kernel_info(reply=True)` answers"
    async with run_kernel() as (km, _):
        kc = km.client()
        try:
            assert (await kc.kernel_info(reply=True, timeout=30))['msg_type'] == 'kernel_info_reply'
            assert kc.channels_running
        finally: await kc.astop_channels()
        with pytest.raises(Exception, match='stopped'): kc.execute('1')  # a stopped client stays stopped


async def test_wait_for_ready_waits_for_the_stdin_connection():
    "Started as jupyter_client code starts it (start_channels not awaited, then wait_for_ready), a prompt right after ready is not lost"
    for _ in range(4):
        km = ConKernelManager()
        await km.start_kernel()
        try:
            kc = km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=30)
            reply = kc.execute('input("? ")', reply=True, timeout=30, allow_stdin=True)
            prompt = await kc.get_stdin_msg(timeout=10)
            assert prompt['msg_type'] == 'input_request'
            kc.input('fine', prompt)
            assert (await reply)['content']['status'] == 'ok'
            await kc.astop_channels()
        finally: await km.shutdown_kernel(now=True)


async def test_a_missing_kernelspec_raises_jupyter_clients_no_such_kernel():
    "Jupyter Server and other jupyter_client code catch NoSuchKernel: it is not wrapped"
    from jupyter_client.kernelspec import NoSuchKernel
    with pytest.raises(NoSuchKernel): await ConKernelManager(kernel_name='no-such-kernel-here').start_kernel()
