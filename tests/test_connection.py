"The connection layer as its users meet it: a jupyter_client manager as parent, news that replaces a silence, a transport given the wrong owner"
import asyncio, os, signal

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.session import Session

from conkernel import (ConKernelClient, Connection, DeadKernelError, KernelOwner, KernelRestartedError, KernelUnresponsiveError, Router,
                       Transport, TransportSettings, WebsocketTransport, run_kernel)


async def test_a_jupyter_client_manager_interrupts_a_conkernel_client():
    km = AsyncKernelManager(client_class='conkernel.ConKernelClient')  # code written for jupyter_client
    await km.start_kernel()
    try:
        kc = km.client()
        assert isinstance(kc, ConKernelClient) and kc.owner.has_kernel
        await kc.start_channels(timeout=60)
        try:
            running = kc.execute('import time; time.sleep(30)', reply=True, timeout=30)
            await asyncio.sleep(1)
            await kc.interrupt()  # through the manager (a signal), as jupyter_client's own client would
            reply = await running
            assert reply['content']['ename'] == 'KeyboardInterrupt'
            assert await kc.is_alive()
        finally: await kc.astop_channels()
    finally: await km.shutdown_kernel(now=True)


async def test_a_death_after_a_silence_says_the_kernel_died():
    async with run_kernel() as (km, kc):
        kc2 = await km.client(heartbeat_timeout=1).start_channels()
        try:
            pid = km.provisioner.process.pid
            os.kill(pid, signal.SIGSTOP)
            for _ in range(100):
                if kc2.connection.unresponsive: break
                await asyncio.sleep(0.05)
            assert isinstance(kc2.connection.closed, KernelUnresponsiveError)
            os.kill(pid, signal.SIGKILL)  # the manager sees the process exit: a definite end replaces the silence
            for _ in range(100):
                if not kc2.connection.unresponsive: break
                await asyncio.sleep(0.05)
            with pytest.raises(DeadKernelError, match='process died'): kc2.execute('1')
            assert not isinstance(kc2.connection.closed, KernelUnresponsiveError)
        finally: await kc2.astop_channels()


async def test_a_websocket_transport_refuses_an_owner_that_cannot_open_one():
    conn = Connection(Router())
    with pytest.raises(TypeError, match='RemoteKernelOwner'):
        WebsocketTransport(conn, TransportSettings(Session(), owner=KernelOwner()))
    kc = ConKernelClient(transport_class=WebsocketTransport, session=Session(key=b'k'))  # no remote manager as parent
    with pytest.raises(TypeError, match='RemoteKernelOwner'): kc.start_channels()


def test_the_owner_of_a_client_without_a_manager_knows_nothing():
    owner = ConKernelClient().owner
    assert (owner.has_kernel, owner.gone, owner.kernel_name) == (False, None, None)


async def test_a_silent_kernel_whose_jupyter_client_manager_says_it_is_gone_is_dead():
    km = AsyncKernelManager(client_class='conkernel.ConKernelClient')
    await km.start_kernel()
    try:
        kc = km.client(heartbeat_timeout=1)
        await kc.start_channels(timeout=60)
        try:
            waiter = kc.execute('import time; time.sleep(30)', reply=True, timeout=60)
            await asyncio.sleep(0.5)
            km.provisioner.process.kill()  # jupyter_client's manager does not watch the process: only asked, it knows
            with pytest.raises(DeadKernelError): await asyncio.wait_for(waiter, 15)
            for _ in range(200):
                if kc.connection.closed is not None and not kc.connection.unresponsive: break
                await asyncio.sleep(0.05)
            with pytest.raises(DeadKernelError, match='process is gone'): kc.execute('1')
            assert not await kc.is_alive()
        finally: await kc.astop_channels()
        assert kc.connection.asking is None
    finally: await km.shutdown_kernel(now=True)


class LosingTransport(Transport):
    "A transport that only ever tells its connection that the kernel is gone"
    def start(self): self.alive = True
    def send(self, channel, msg): self.connection.lost(DeadKernelError, "the far end hung up")
    def is_alive(self): return self.alive
    def close(self): self.alive = False


async def test_a_client_without_a_manager_is_not_alive_once_its_link_is_lost():
    kc = ConKernelClient(transport_class=LosingTransport, session=Session(key=b'k'), heartbeat_timeout=None)
    kc.start_channels()
    try:
        assert await kc.is_alive()
        with pytest.raises(DeadKernelError): await kc.kernel_info(reply=True, timeout=5)
        assert kc.channels_running and not await kc.is_alive()
    finally: await kc.astop_channels()


async def test_a_restart_by_a_jupyter_client_manager_fails_what_waits_and_the_client_goes_on():
    km = AsyncKernelManager(client_class='conkernel.ConKernelClient')
    await km.start_kernel()
    try:
        kc = km.client()
        await kc.start_channels(timeout=60)
        try:
            await kc.execute('x = 1', reply=True)
            async def streamed(): return [m async for m in kc.stream('import time; time.sleep(20)')]
            waiting = asyncio.gather(kc.run('import time; time.sleep(20)'), streamed(), return_exceptions=True)
            await asyncio.sleep(0.5)
            await km.restart_kernel()  # jupyter_client's own restart: nobody tells the client
            results = await asyncio.wait_for(waiting, 15)
            assert [type(r).__name__ for r in results] == ['KernelRestartedError'] * 2, results
            assert (await kc.run('x', timeout=20)).ename == 'NameError'  # the new kernel answers
            assert len(kc.pending) == 0
        finally: await kc.astop_channels()
    finally: await km.shutdown_kernel(now=True)


async def test_a_client_its_manager_did_not_make_hears_of_the_restart():
    async with run_kernel('py') as (km, kc):  # ipymini greets every subscriber: this client knows its kernel
        other = ConKernelClient(connection_file=km.connection_file)
        other.load_connection_file()
        await other.start_channels(timeout=60)
        try:
            assert other.connection.kernel_session is not None
            waiter = other.execute('import time; time.sleep(20)', reply=True, timeout=30)
            await asyncio.sleep(0.5)
            await km.restart_kernel(now=True)  # killed: the old kernel sends no reply of its own
            with pytest.raises(KernelRestartedError): await asyncio.wait_for(waiter, 15)
            assert (await other.execute('1', reply=True, timeout=20))['content']['status'] == 'ok'
        finally: await other.astop_channels()
