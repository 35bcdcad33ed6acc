"Messages a server will not take, requests given up during an outage, reconnect backoff and kernel ids, through a real Jupyter Server and Kernel Gateway."
import array, asyncio, json

import pytest

for mod in 'websockets', 'httpx', 'kernel_gateway', 'jupyter_server': pytest.importorskip(mod)

from conkernel import DeadKernelError, run_kernel
from conkernel.errors import ConnectionLostError, MessageTooLargeError
from conkernel.gateway import ConGatewayKernelManager, run_gateway_kernel
from conkernel.testing import LocalServer
from proxy import Proxy

MiB = 2**20
RECORD = """
def record(comm, msg):
    sizes.append([len(b) for b in msg['buffers']])
    comm.on_msg(lambda m: sizes.append([bytes(b) for b in m['buffers']] if m['content']['data'].get('echo') else [len(b) for b in m['buffers']]))
sizes = []
get_ipython().kernel.comm_manager.register_target('record', record)"""


@pytest.fixture(scope='module', params=['kernelgateway', 'server'])
def server(request):
    "One server per app for the module; always stopped (it shuts its kernels down)"
    with LocalServer(request.param) as s: yield s


def remote(server, **kw): return run_kernel(url=server.url, **{'token': server.token, **kw})


def port_of(url): return int(url.rsplit(':', 1)[1])


async def value(kc, expr): return (await kc.run(expr, raises=True, timeout=30)).outputs[0]['data']['text/plain']


@pytest.mark.parametrize('framing', ['v1', 'json'])
async def test_a_request_larger_than_the_server_takes_fails_at_once_and_the_client_goes_on(server, framing):
    async with remote(server, ws_protocol=framing) as (km, kc):
        with pytest.raises(MessageTooLargeError, match='websocket_max_message_size=10485760'):
            kc.execute('x = "' + 'a' * 12 * MiB + '"', reply=True)
        with pytest.raises(MessageTooLargeError): await kc.push(blob=bytes(8 * MiB))  # 8 MB of bytes: base64 in JSON
        await kc.execute(RECORD, reply=True, timeout=30)
        with pytest.raises(MessageTooLargeError): kc.comm_open('record', buffers=[bytes(12 * MiB)])
        # the frame as it will be sent, buffers included: exactly the limit goes through, one byte more does not
        comm = kc.comm_open('record')
        msg = kc.session.msg('comm_msg', {'comm_id': comm.comm_id, 'data': {}})
        msg['buffers'] = [b'']
        overhead = len(kc.kernel_transport._encode('shell', msg))
        msg['buffers'] = [bytes(10 * MiB - overhead + 1)]
        with pytest.raises(MessageTooLargeError): kc._send('shell', msg)
        msg['buffers'] = [bytes(10 * MiB - overhead)]
        kc._send('shell', msg)
        assert await value(kc, 'sizes') == f'[[], [{10 * MiB - overhead}]]'
        assert await value(kc, '1 + 1') == '2' and kc.stats['websocket_dropped'] == 0 and len(kc.pending) == 0
        assert km.websocket_max_message_size == 10 * MiB  # Tornado's default, which both servers use


@pytest.mark.parametrize('framing', ['v1', 'json'])
async def test_buffers_of_wide_items_arrive_whole(server, framing):
    async with remote(server, ws_protocol=framing) as (km, kc):
        await kc.execute(RECORD, reply=True, timeout=30)
        floats = array.array('d', [0.5, 1.5, 2.5])  # 8-byte items: a memoryview's len counts 3
        comm = kc.comm_open('record')
        comm.send({'echo': True}, buffers=[floats, b'z'])
        assert await value(kc, f'sizes == [[], [{floats.tobytes()!r}, b"z"]]') == 'True'


@pytest.mark.parametrize('framing', ['v1', 'json'])
async def test_a_message_the_server_closes_the_websocket_for_fails_and_is_never_sent_again(server, framing):
    # the manager was not told the limit: the server's close (code 1009, message too big) is the answer
    async with remote(server, ws_protocol=framing, websocket_max_message_size=None) as (km, kc):
        big = kc.execute('too_big = "' + 'a' * 12 * MiB + '"', reply=True, timeout=30)
        after = kc.execute('after = 1', reply=True, timeout=30)
        with pytest.raises(MessageTooLargeError, match='close code 1009'): await big
        assert (await after)['content']['status'] == 'ok'
        with pytest.raises(MessageTooLargeError, match='closed the websocket for one of'):
            kc.execute('again_too_big = "' + 'a' * 12 * MiB + '"', reply=True)  # as large or larger: refused at once
        await asyncio.sleep(1)
        assert await value(kc, '[n for n in ("too_big", "after", "again_too_big") if n in globals()]') == "['after']"
        assert kc.stats['websocket_dropped'] == 1 and kc.stats['too_large_to_send'] == 1 and len(kc.pending) == 0


async def test_a_server_configured_to_take_less():
    settings = json.dumps({'websocket_max_message_size': MiB})
    with LocalServer('server', argv=(f'--ServerApp.tornado_settings={settings}',)) as srv:
        async with run_kernel(url=srv.url, token=srv.token) as (km, kc):  # told 10 MiB: the server's close says less
            with pytest.raises(MessageTooLargeError, match='close code 1009'):
                await kc.execute('x = "' + 'a' * 2 * MiB + '"', reply=True, timeout=30)
            assert await value(kc, '1 + 1') == '2'
        async with run_kernel(url=srv.url, token=srv.token, websocket_max_message_size=MiB) as (km, kc):
            with pytest.raises(MessageTooLargeError, match='websocket_max_message_size=1048576'):
                kc.execute('x = "' + 'a' * 2 * MiB + '"', reply=True)
            assert await value(kc, 'len("' + 'a' * (MiB // 2) + '")') == str(MiB // 2)
            assert kc.stats['websocket_dropped'] == 0


async def test_requests_whose_caller_gave_up_are_not_sent_when_the_websocket_opens_again(server):
    proxy = await Proxy(port_of(server.url)).start()
    try:
        async with run_kernel(url=proxy.url, token=server.token) as (km, kc):
            proxy.mode = 'refuse'
            proxy.cut()  # the websocket drops and cannot be opened again for now
            await asyncio.sleep(0.3)
            with pytest.raises(TimeoutError): await kc.execute('timed_out = 1', reply=True, timeout=0.5)
            cancelled = asyncio.ensure_future(kc.execute('cancelled = 1', reply=True, timeout=None))
            await asyncio.sleep(0.1)
            cancelled.cancel()
            kept = kc.execute('kept = 1', reply=True, timeout=30)
            await asyncio.sleep(0.5)
            proxy.mode = 'pass'
            assert (await kept)['content']['status'] == 'ok'
            assert await value(kc, '[n for n in ("timed_out", "cancelled", "kept") if n in globals()]') == "['kept']"
            assert kc.stats['websocket_dropped'] == 1 and len(kc.pending) == 0
    finally: await proxy.close()


async def test_a_websocket_that_keeps_dropping_backs_off_and_fails_within_reconnect_timeout(server):
    proxy = await Proxy(port_of(server.url)).start()
    async def cut_every_connection():
        while True:
            proxy.cut()
            await asyncio.sleep(0.02)
    try:
        async with run_kernel(url=proxy.url, token=server.token, reconnect_timeout=3) as (km, kc):
            waiter = kc.execute('import time; time.sleep(60)', reply=True, timeout=None)
            await asyncio.sleep(0.3)
            cutter = asyncio.ensure_future(cut_every_connection())
            try:
                with pytest.raises(ConnectionLostError): await asyncio.wait_for(waiter, 20)
                await asyncio.wait_for(asyncio.shield(kc.kernel_transport.task), 10)  # it gave up: no storm goes on
            finally: cutter.cancel()
            assert 1 <= kc.stats['websocket_dropped'] < 30, kc.stats
            with pytest.raises(ConnectionLostError): kc.execute('1')
    finally: await proxy.close()


NOT_IDS = ['../kernelspecs', '', 'not-a-kernel/../{id}', '{id}/..', '{id}/../../kernelspecs', '{id}?x=1', ' {id}']


async def test_a_kernel_id_that_is_not_an_id_is_refused_and_names_no_other_kernel(server):
    async with remote(server) as (km, kc):
        await kc.execute('alive = 1', reply=True)
        for bad in [b.format(id=km.kernel_id) for b in NOT_IDS]:
            with pytest.raises(ValueError, match='is not a kernel id'):
                async with run_gateway_kernel(server.url, token=server.token, kernel_id=bad): pass
            with pytest.raises(ValueError, match='is not a kernel id'):
                ConGatewayKernelManager(server.url, token=server.token, kernel_id=bad)
            other = ConGatewayKernelManager(server.url, token=server.token)
            try:
                with pytest.raises(ValueError, match='is not a kernel id'): other.kernel_id = bad
                assert other.kernel_id is None
                for call in other.shutdown_kernel, other.restart_kernel, other.interrupt_kernel:
                    with pytest.raises(RuntimeError, match='no kernel'): await call()
            finally: await other.aclose()
        assert await km.is_alive() and await value(kc, 'alive') == '1'  # nothing reached it
        upper = ConGatewayKernelManager(server.url, token=server.token, kernel_id=km.kernel_id.upper())
        try: assert not await upper.is_alive()  # a well-formed id the server does not know
        finally: await upper.aclose()
