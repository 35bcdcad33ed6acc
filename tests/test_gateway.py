"Concurrency, stdin, interrupt, reconnection and failure tests through a Kernel Gateway and a Jupyter Server."
import asyncio, os, shutil, subprocess, sys

import pytest

for mod in 'websockets', 'httpx', 'kernel_gateway', 'jupyter_server': pytest.importorskip(mod)

from conkernel import ChannelsStoppedError, DeadKernelError, KernelRestartedError, blocking_kernel, run_kernel
from conkernel.errors import ConnectionLostError, GatewayError
from conkernel.gateway import ConGatewayKernelManager, run_gateway_kernel
from conkernel.testing import LocalServer, free_port
from conkernel.websocket import WebsocketTransport
from test_debugger import stop_read_continue

APPS = ['kernelgateway', 'server']


@pytest.fixture(scope='module', params=APPS)
def server(request):
    "One server per app for the whole module (starting one takes seconds); always stopped"
    with LocalServer(request.param) as s: yield s


def own_value(reply): return reply['content']['user_expressions']['v']['data']['text/plain']


def remote(server, **kw): return run_kernel(url=server.url, **{'token': server.token, **kw})


@pytest.mark.parametrize('framing', ['v1', 'json'])
async def test_thousand_concurrent_executes_each_get_their_own_reply(server, framing):
    async with remote(server, ws_protocol=framing) as (km, kc):
        assert isinstance(kc.kernel_transport, WebsocketTransport) and kc.kernel_transport.v1 == (framing == 'v1')
        waiters = [kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True, timeout=120) for i in range(1000)]
        assert len(kc.pending) == 1000
        replies = await asyncio.gather(*waiters)
        assert [own_value(r) for r in replies] == [str(i) for i in range(1000)]
        assert [r['parent_header']['msg_id'] for r in replies] == [w.msg_id for w in waiters]
        assert len(kc.pending) == 0


async def test_mixed_burst_of_requests(server):
    async with remote(server) as (km, kc):
        async def streamed(i):
            return [m['msg_type'] async for m in kc.stream(f'print({i})')]
        async def on_subshell():
            async with kc.subshell() as sub: return (await sub.run('7 * 6')).outputs[0]['data']['text/plain']
        sent = [kc.execute(f'w = {i}') for i in range(20)]
        results = await asyncio.gather(
            *[kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True) for i in range(50)],
            *[kc.kernel_info(reply=True) for _ in range(20)],
            *[kc.run(f'print({i})') for i in range(30)],
            *[streamed(i) for i in range(10)],
            *[kc._request('shell', 'comm_info_request', {}, True) for _ in range(10)],
            on_subshell())
        assert [own_value(r) for r in results[:50]] == [str(i) for i in range(50)]
        assert all(r['msg_type'] == 'kernel_info_reply' for r in results[50:70])
        assert [r.stdout for r in results[70:100]] == [f'{i}\n' for i in range(30)]
        assert all(s[-1] == 'execute_reply' and 'stream' in s for s in results[100:110])
        assert all(r['msg_type'] == 'comm_info_reply' for r in results[110:120])
        assert results[120] == '42'
        unclaimed = [await kc.get_shell_msg(timeout=10) for _ in sent]
        assert [m['parent_header']['msg_id'] for m in unclaimed] == sent
        assert len(kc.pending) == 0


async def test_every_request_method_concurrently(server):
    async with remote(server) as (km, kc):
        await kc.execute('alpha_value = 1', reply=True)
        outputs, asked = [], []
        def hook(msg):
            asked.append(msg['content']['prompt'])
            return 'typed'
        res = await asyncio.gather(
            *[kc.complete('alpha_v', reply=True) for _ in range(10)],
            *[kc.inspect('alpha_value', reply=True) for _ in range(10)],
            *[kc.is_complete('for i in x:', reply=True) for _ in range(10)],
            kc.history(hist_access_type='tail', n=5, reply=True),
            kc.comm_info(reply=True),
            kc.shell_request('kernel_info_request'),
            kc.control_request('kernel_info_request'),
            kc.execute_interactive('print(input("say: "))', allow_stdin=True, stdin_hook=hook,
                                   output_hook=outputs.append))
        assert all(r['content']['matches'] == ['alpha_value'] for r in res[:10])
        assert all(r['content']['found'] for r in res[10:20])
        assert all(r['content']['status'] == 'incomplete' for r in res[20:30])
        assert [r['msg_type'] for r in res[30:34]] == ['history_reply', 'comm_info_reply', 'kernel_info_reply', 'kernel_info_reply']
        assert res[34]['content']['status'] == 'ok' and asked == ['say: ']
        assert ''.join(o['content']['text'] for o in outputs if o['msg_type'] == 'stream') == 'typed\n'
        assert len(kc.pending) == 0


async def test_concurrent_runs_each_get_their_own_outputs(server):
    async with remote(server) as (km, kc):
        code = 'import time\nfor j in range(3):\n    print({i}, j, flush=True); time.sleep(0.01)\n{i} * 2'
        results = await asyncio.gather(*[kc.run(code.format(i=i)) for i in range(40)])
        for i, r in enumerate(results):
            assert r.stdout == ''.join(f'{i} {j}\n' for j in range(3))
            assert r.outputs[-1]['data']['text/plain'] == str(2 * i)


async def test_stdin_input_request_is_answered(server):
    async with remote(server) as (km, kc):
        asked = []
        def answer(msg):
            asked.append(msg['content']['prompt'])
            kc.input(f'ada{len(asked)}')
        r = await kc.run('print(input("name? "), input("again? "))', allow_stdin=True, on_stdin=answer, timeout=30)
        assert asked == ['name? ', 'again? ']
        assert r.stdout == 'ada1 ada2\n'


async def test_interrupt_stops_the_running_request(server):
    async with remote(server) as (km, kc):
        running = kc.run('import time; time.sleep(60)', timeout=60)
        queued = kc.execute('1', reply=True, timeout=60)
        await asyncio.sleep(1)
        await kc.interrupt()
        r = await running
        assert r.status == 'error' and r.ename == 'KeyboardInterrupt'
        assert (await queued)['content']['status'] in ('ok', 'aborted')
        assert (await kc.run('1 + 1')).outputs[0]['data']['text/plain'] == '2'


async def test_dropped_websocket_reconnects_and_keeps_waiters(server):
    async with remote(server) as (km, kc):
        # the kernel is busy (silent) when the connection drops: the server keeps what comes meanwhile and replays
        # it to the same session. (A reply the server wrote into the breaking connection before it saw it close
        # is lost: its waiter gets its timeout.)
        first = kc.execute('import time; time.sleep(1); v = 0', user_expressions={'v': 'v'}, reply=True, timeout=30)
        waiters = [first, *[kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True, timeout=30) for i in range(1, 30)]]
        await asyncio.sleep(0.3)
        kc.kernel_transport.ws.transport.abort()  # the connection drops under the client
        later = [kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True, timeout=30) for i in range(30, 40)]
        replies = await asyncio.gather(*waiters, *later)
        assert [own_value(r) for r in replies] == [str(i) for i in range(40)]
        await asyncio.wait_for(asyncio.gather(*kc.kernel_transport.barriers), 10)  # the reconnect's kernel_info barrier
        assert kc.kernel_transport.ws is not None and len(kc.pending) == 0
        assert kc.stats['websocket_dropped'] == 1


async def test_stop_fails_every_waiter_at_once(server):
    async with remote(server) as (km, kc):
        waiters = [kc.execute('import time; time.sleep(0.5)', reply=True) for _ in range(20)]
        await kc.astop_channels()
        assert all(w.future.done() for w in waiters)
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, ChannelsStoppedError) for r in results)
        assert kc.kernel_transport.task.done()
        with pytest.raises(ChannelsStoppedError): kc.execute('1')


async def test_restart_fails_waiters_then_works(server):
    async with remote(server) as (km, kc):
        await kc.execute('x = 1', reply=True)
        waiter = kc.execute('import time; time.sleep(30)', reply=True)
        await asyncio.sleep(0.3)
        await km.restart_kernel()
        with pytest.raises(KernelRestartedError): await waiter
        r = await kc.run('"x" in dir()')
        assert r.outputs[0]['data']['text/plain'] == 'False'  # a fresh kernel


@pytest.mark.parametrize('framing', ['v1', 'json'])
async def test_binary_buffers_arrive_in_both_framings(server, framing):
    async with remote(server, ws_protocol=framing) as (km, kc):
        r = await kc.run("from comm import create_comm\n"
                         "c = create_comm(target_name='t', data={'n': 1}, buffers=[b'abc', bytes(range(256))])",
                         keep_msgs=True, raises=True)
        opened = [m for m in r.msgs if m['msg_type'] == 'comm_open']
        assert [bytes(b) for b in opened[0]['buffers']] == [b'abc', bytes(range(256))]
        assert opened[0]['content']['data'] == {'n': 1}


async def test_kernel_death_fails_waiters_and_the_restarted_kernel_answers(server):
    async with remote(server) as (km, kc):
        waiters = [kc.execute('import os; os._exit(1)', reply=True, timeout=60),
                   *[kc.execute('1', reply=True, timeout=60) for _ in range(5)]]
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, KernelRestartedError) for r in results), results
        await kc.wait_for_ready()
        assert (await kc.run('1 + 1')).outputs[0]['data']['text/plain'] == '2'


async def test_attach_to_a_running_kernel_by_id(server):
    async with remote(server) as (km, kc):
        await kc.execute('shared = 41', reply=True)
        async with run_gateway_kernel(server.url, token=server.token, kernel_id=km.kernel_id) as (km2, kc2):
            assert km2.kernel_id == km.kernel_id
            assert (await kc2.run('shared + 1')).outputs[0]['data']['text/plain'] == '42'
        assert await km.is_alive()  # attaching did not shut it down
        assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'


async def test_kernel_shut_down_by_another_client_fails_waiters(server):
    async with remote(server) as (km, kc):
        assert kc.kernel_transport.v1  # 'auto' negotiates the binary framing
        waiters = [kc.execute('import time; time.sleep(60)', reply=True, timeout=None) for _ in range(10)]
        other = ConGatewayKernelManager(server.url, token=server.token, kernel_id=km.kernel_id)
        try: await other.shutdown_kernel()
        finally: await other.aclose()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, DeadKernelError) and not isinstance(r, KernelRestartedError) for r in results), results
        assert not await km.is_alive()
        with pytest.raises(DeadKernelError): kc.execute('1')


async def test_kernel_restarted_by_another_client_fails_waiters_then_works(server):
    async with remote(server) as (km, kc):
        waiters = [kc.execute('import time; time.sleep(60)', reply=True, timeout=None) for _ in range(10)]
        other = ConGatewayKernelManager(server.url, token=server.token, kernel_id=km.kernel_id)
        try: await other.restart_kernel()
        finally: await other.aclose()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, KernelRestartedError) for r in results), results
        await kc.wait_for_ready()
        assert (await kc.run('1 + 1')).outputs[0]['data']['text/plain'] == '2'


async def test_clear_errors_for_bad_token_and_unknown_ids(server):
    with pytest.raises(GatewayError) as e:
        async with remote(server, token='wrong'): pass
    assert e.value.status in (401, 403)
    with pytest.raises(GatewayError) as e:
        async with remote(server, kernel_id='00000000-0000-0000-0000-000000000000'): pass
    assert e.value.status == 404
    with pytest.raises(GatewayError) as e:
        async with remote(server, kernel_name='no-such-kernelspec'): pass
    assert e.value.status in (404, 500) and 'no-such-kernelspec' in str(e.value)
    km = ConGatewayKernelManager(server.url, token=server.token)
    try: assert 'python3' in (await km.list_kernelspecs())['kernelspecs']
    finally: await km.aclose()


@pytest.mark.parametrize('app', APPS)
async def test_stopping_the_server_fails_every_waiter(app):
    with LocalServer(app) as srv:
        async with run_kernel(url=srv.url, token=srv.token, reconnect_timeout=3) as (km, kc):
            waiters = [kc.execute('import time; time.sleep(60)', reply=True, timeout=None) for _ in range(20)]
            runs = [kc.run('import time; time.sleep(60)') for _ in range(5)]
            await asyncio.sleep(0.5)
            await asyncio.to_thread(srv.stop)
            results = await asyncio.gather(*waiters, *runs, return_exceptions=True)
            assert all(isinstance(r, DeadKernelError) for r in results), results
            assert len(kc.pending) == 0
            with pytest.raises(DeadKernelError): kc.execute('1')


def test_blocking_client_over_a_server(server):
    from concurrent.futures import ThreadPoolExecutor
    with blocking_kernel(url=server.url, token=server.token) as kc:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: kc.run(f'print({i})').stdout, range(40)))
        assert results == [f'{i}\n' for i in range(40)]


async def test_unreachable_server_is_a_clear_connection_error():
    with pytest.raises(ConnectionError, match='cannot reach'):
        async with run_kernel(url=f'http://127.0.0.1:{free_port()}', token='x'): pass


@pytest.fixture(scope='module')
def certificate(tmp_path_factory):
    "A self-signed certificate for 127.0.0.1: (certfile, keyfile)"
    d = tmp_path_factory.mktemp('tls')
    cert, key = d / 'cert.pem', d / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
                    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], check=True, capture_output=True)
    return str(cert), str(key)


@pytest.mark.skipif(not shutil.which('openssl'), reason='needs openssl to make a certificate')
async def test_tls_certificates_are_checked_by_default(certificate):
    with LocalServer('server', tls=certificate) as srv:
        assert srv.url.startswith('https://')
        with pytest.raises(ConnectionError, match='CERTIFICATE_VERIFY_FAILED'):
            async with run_kernel(url=srv.url, token=srv.token): pass
        async with run_kernel(url=srv.url, token=srv.token, verify=certificate[0]) as (km, kc):
            assert kc.parent._ws_url(kc.session.session).startswith('wss://')
            assert (await kc.run('1 + 1')).outputs[0]['data']['text/plain'] == '2'


def test_local_path_does_not_import_the_gateway_dependencies():
    code = "import sys, conkernel; assert not {'websockets', 'httpx'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, '-c', code], check=True, env={**os.environ, 'PYTHONPATH': os.pathsep.join(sys.path)})


@pytest.mark.parametrize('framing', ['v1', 'json'])
async def test_comm_buffers_and_the_debugger_through_a_server(server, framing):
    async with remote(server, ws_protocol=framing) as (km, kc):
        await kc.execute("""
def echo(comm, msg):
    comm.send({'echo': msg['content']['data']}, buffers=msg['buffers'])
    comm.on_msg(lambda m: comm.send({'echo': m['content']['data']}, buffers=m['buffers']))
get_ipython().kernel.comm_manager.register_target('echo', echo)""", reply=True)
        comm = kc.comm_open('echo', {'x': 1}, buffers=[b'\x00\x01\x02', b'zz'])
        msg = await comm.recv(timeout=10)
        assert msg['content']['data'] == {'echo': {'x': 1}} and [bytes(b) for b in msg['buffers']] == [b'\x00\x01\x02', b'zz']
        comm.close()
        assert await stop_read_continue(kc, "def f(x):\n    y = x + 1\n    return y\nf(1)", 3, 'y') == '2'
        assert len(kc.pending) == 0
