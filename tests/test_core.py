"Concurrency, timeout, stop and send-path tests for ConKernelClient on real kernels."
import asyncio, gc, time, warnings
from contextlib import contextmanager
from queue import Empty

import pytest, zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.session import Session

from conkernel import ChannelsStoppedError, ConKernelClient, run_kernel
from conkernel.connection import Connection
from conkernel.router import Router
from conkernel.transport import TransportSettings, ZMQTransport

KERNELS = ['python3', *(['py'] if 'py' in KernelSpecManager().find_kernel_specs() else [])]  # ipykernel, ipymini (not on Python 3.10)


def own_value(reply): return reply['content']['user_expressions']['v']['data']['text/plain']


@pytest.mark.parametrize('kernel', KERNELS)
async def test_thousand_concurrent_executes_each_get_their_own_reply(kernel):
    async with run_kernel(kernel) as (km, kc):
        waiters = [kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True, timeout=120) for i in range(1000)]
        assert len(kc.pending) == 1000
        replies = await asyncio.gather(*waiters)
        assert [own_value(r) for r in replies] == [str(i) for i in range(1000)]
        assert [r['parent_header']['msg_id'] for r in replies] == [w.msg_id for w in waiters]
        assert len(kc.pending) == 0


async def test_fire_and_forget_interleaved_with_awaited_requests():
    async with run_kernel() as (km, kc):
        sent, waiters = [], []
        for i in range(50):
            sent.append(kc.execute(f'w = {i}'))
            waiters.append(kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True))
        assert all(isinstance(m, str) for m in sent)
        assert [own_value(r) for r in await asyncio.gather(*waiters)] == [str(i) for i in range(50)]
        unclaimed = [await kc.get_shell_msg(timeout=5) for _ in sent]
        assert [m['parent_header']['msg_id'] for m in unclaimed] == sent
        with pytest.raises(Empty): await kc.get_shell_msg(timeout=0.2)
        assert len(kc.pending) == 0


async def test_timeouts_raise_and_leave_nothing_pending():
    async with run_kernel() as (km, kc):
        timed_out = kc.router.stats['timed_out']
        slow = [kc.execute('import time; time.sleep(0.3)', reply=True, timeout=0.05) for _ in range(5)]
        results = await asyncio.gather(*slow, return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results)
        assert len(kc.pending) == 0
        assert kc.router.stats['timed_out'] == timed_out + 5
        assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'  # still works afterwards


async def test_cancelled_and_unawaited_requests_leave_the_router():
    async with run_kernel() as (km, kc):
        task = asyncio.ensure_future(kc.execute('import time; time.sleep(0.5)', reply=True))
        await asyncio.sleep(0.05)
        assert len(kc.pending) == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert len(kc.pending) == 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            kc.execute('1+1', reply=True)  # never awaited
            gc.collect()
        assert len(kc.pending) == 0
        assert not [w for w in caught if 'never awaited' in str(w.message)]


async def test_stop_fails_every_waiter_at_once():
    async with run_kernel() as (km, kc):
        waiters = [kc.execute('import time; time.sleep(0.5)', reply=True) for _ in range(20)]
        await kc.astop_channels()
        assert all(w.future.done() for w in waiters)  # failed at once, not when the kernel answers
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, ChannelsStoppedError) for r in results)
        assert len(kc.pending) == 0
        with pytest.raises(ChannelsStoppedError): kc.execute('1')


async def test_unread_queues_are_bounded():
    async with run_kernel() as (km, kc):
        kc.router.queues['iopub'].maxlen = 10
        await asyncio.gather(*[kc.execute(f'print({i})', reply=True) for i in range(20)])
        assert len(kc.router.queues['iopub']) == 10
        assert kc.router.queues['iopub'].dropped > 0


class TransportWithoutEdgeCheck(ZMQTransport):
    "A transport whose send skips the check for a reply that arrived meanwhile"
    def send(self, channel, msg): self.settings.session.send(self.sockets[channel], msg)


@contextmanager
def transport_to_local_router(transport_class=ZMQTransport):
    "A started shell-only transport connected to a local ROUTER socket standing in for a kernel: (transport, router, server)"
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    port = server.bind_to_random_port('tcp://127.0.0.1')
    kc = ConKernelClient(session=Session(key=b'secret'), context=ctx, ip='127.0.0.1', shell_port=port)
    router = Router()
    transport = transport_class(Connection(router), TransportSettings(kc.session, ('shell',), ports=kc))
    transport.start()
    try: yield transport, router, server
    finally:
        transport.close()
        server.close(0)
        ctx.term()


async def reply_read_after_a_send(transport_class):
    "Whether a reply that arrives before another send on the same socket still reaches its waiter"
    with transport_to_local_router(transport_class) as (transport, router, server):
        session = transport.settings.session
        await asyncio.sleep(0.05)  # let the first drain run
        first = session.msg('kernel_info_request')
        reply = router.register(first['header']['msg_id'], 'kernel_info_request')
        transport.send('shell', first)
        ident = server.recv_multipart()[0]  # the loop is blocked: nothing reads the client yet
        session.send(server, 'kernel_info_reply', {}, parent=first, ident=ident)
        time.sleep(0.1)  # the reply is now queued on the client socket
        transport.send('shell', session.msg('kernel_info_request'))  # this send can consume the socket's wake-up edge
        try: return (await asyncio.wait_for(reply, 1))['msg_type']
        except asyncio.TimeoutError: return None


async def test_reply_queued_before_a_send_is_not_lost():
    assert await reply_read_after_a_send(TransportWithoutEdgeCheck) is None  # the hazard is real
    assert await reply_read_after_a_send(ZMQTransport) == 'kernel_info_reply'


async def test_client_from_a_connection_file(tmp_path):
    async with run_kernel() as (km, kc):
        other = ConKernelClient(connection_file=km.connection_file)
        other.load_connection_file()
        await other.start_channels()
        try: assert own_value(await other.execute('v = 5', user_expressions={'v': 'v'}, reply=True)) == '5'
        finally: other.stop_channels()


@pytest.mark.timeout(30)
async def test_a_burst_beyond_the_high_water_mark_never_blocks_the_loop():
    "5,000 requests of 10 kB to a peer that reads nothing: with ZMQ's default limits a send would block forever"
    with transport_to_local_router() as (transport, router, server):
        session = transport.settings.session
        for _ in range(5000): transport.send('shell', session.msg('execute_request', {'code': 'x' * 10_000}))
