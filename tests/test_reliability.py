"""Every fault ends in a reply or a clear error, promptly, with nothing lost, leaked or orphaned: one test per
fault found by the outside review (numbered as in its report), locally and through a server behind a proxy."""
import asyncio, math, os, signal, time

import pytest
from jupyter_client.session import Session

from conkernel import (ChannelsStoppedError, ConKernelClient, ConKernelManager, ConnectionLostError, DeadKernelError,
                       KernelUnresponsiveError, MessageTooLargeError, SubshellError, run_kernel)
from fakekernel import FakeKernel

SLEEP = 'import time; time.sleep(30)'


def own_value(reply): return reply['content']['user_expressions']['v']['data']['text/plain']


async def settle(waiters, timeout=20):
    "Results of `waiters` (exceptions included); fails the test rather than hang"
    return await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), timeout)


async def numbered(kc, n, start=0):
    replies = await settle([kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True, timeout=20) for i in range(start, start + n)])
    return [own_value(r) for r in replies] == [str(i) for i in range(start, start + n)]


# 1. Two clients of one manager each get their own replies (each has its own session id, so its own ZMQ identity)

@pytest.mark.parametrize('kernel', ['python3', 'xpython'])
async def test_two_clients_of_one_manager_each_get_their_replies(kernel):
    async with run_kernel(kernel) as (km, kc):
        other = await km.client().start_channels(timeout=30)
        try:
            assert kc.session.session != other.session.session and kc.session.key == other.session.key
            for i in range(3 if kernel == 'xpython' else 20):  # xeus-python: one request at a time
                assert await numbered(kc, 1, i) and await numbered(other, 1, 100 + i)
        finally: await other.astop_channels()
        assert await numbered(kc, 1)


async def test_fresh_clients_after_kill_and_restart_become_ready():
    async with run_kernel() as (km, kc):
        for _ in range(3):
            os.kill(km.provisioner.process.pid, signal.SIGKILL)
            await km.restart_kernel(now=True)
            fresh = await km.client().start_channels(timeout=30)
            try: assert await numbered(fresh, 5)
            finally: await fresh.astop_channels()


# 2. Restarting a kernel that died hands the existing clients back, ready

@pytest.mark.parametrize('how', ['kill', 'exit'])
async def test_restart_after_death_reopens_every_client(how):
    async with run_kernel() as (km, kc):
        waiter = kc.execute(SLEEP if how == 'kill' else 'import os; os._exit(3)', reply=True)
        if how == 'kill':
            await asyncio.sleep(0.3)
            os.kill(km.provisioner.process.pid, signal.SIGKILL)
        with pytest.raises(DeadKernelError): await asyncio.wait_for(waiter, 20)
        await km.restart_kernel()
        assert await numbered(kc, 10) and len(kc.pending) == 0


@pytest.mark.parametrize('kernel', ['py', 'python3'])
async def test_a_request_sent_to_a_dead_kernel_is_not_run_by_its_successor(kernel, tmp_path):
    "Sent after the kernel died but before the client knew: its caller is told it failed, so the new kernel must not run it"
    async with run_kernel(kernel) as (km, kc):
        for trial in range(2):
            pid = km.provisioner.process.pid
            os.kill(pid, signal.SIGKILL)
            while open(f'/proc/{pid}/stat').read().rsplit(') ', 1)[1][0] != 'Z': time.sleep(0.001)
            time.sleep(0.05)  # the loop does not run: the client does not know yet, and the kernel's sockets are gone
            ghost = tmp_path / f'ghost{trial}'
            with pytest.raises(DeadKernelError): await kc.execute(f'open({str(ghost)!r}, "w").close()', reply=True, timeout=10)
            await km.restart_kernel()
            assert await numbered(kc, 3)  # the new kernel has answered requests sent after the restart ...
            await asyncio.sleep(0.5)
            assert not ghost.exists()  # ... and never ran the one sent to the dead kernel
        assert len(kc.pending) == 0


# 3. No single inbound message can stop the reader: malformed fields (a parent msg_id that is a list, ...),
#    generated field by field, signed with the session key, fed through the real reader

def malformed_parts(session, parent, msg_type, content):
    "(label, parts) for signed `msg_type` messages to `parent` with one header, parent header or content field wrong"
    good = session.msg(msg_type, content, parent=parent)
    wrong = [None, 7, 1.5, True, [], ['x'], {}, {'a': 'b'}, 'x' * 100_000, float('nan')]
    variants = []
    for part in 'header', 'parent_header', 'content':
        for field in good[part]:
            for value in wrong:
                msg = {k: dict(good[k]) if isinstance(good[k], dict) else good[k] for k in good}
                msg[part][field] = value
                variants.append((f'{part}.{field}={value!r:.20}', msg))
        for value in [None, 7, 'x', ['y']]:  # the whole part of the wrong type
            variants.append((f'{part}={value!r}', {**good, part: value}))
    return [(label, [session.pack(m[k]) for k in ('header', 'parent_header', 'metadata', 'content')]) for label, m in variants]


async def test_malformed_signed_messages_never_stop_the_reader():
    "Replies and outputs with each field wrong, to a request that is waiting (a `run`), between true replies"
    fk = FakeKernel(key=b'k')
    kc = ConKernelClient(session=Session(key=b'k'))
    kc.load_connection_info(fk.connection_info)
    await kc.start_channels(timeout=20)
    try:
        sent, decoy = 0, {}
        def bad_then_true(sock, idents, msg, handle=fk.handle):
            nonlocal sent
            code = msg['content'].get('code')
            if code == 'decoy': return decoy.update(sock=sock, idents=idents, msg=msg)  # answered at the end
            if code is not None and decoy:
                for s, t, c in [(sock, 'execute_reply', {'status': 'ok'}), (fk.sockets['iopub'], 'stream', {'name': 'stdout', 'text': 'x'}),
                                (fk.sockets['iopub'], 'status', {'execution_state': 'idle'})]:
                    for label, parts in malformed_parts(fk.session, decoy['msg'], t, c):
                        fk.raw(s, idents if s is sock else [], parts)
                        sent += 1
            handle(sock, idents, msg)
        fk.handle = bad_then_true
        decoy_run = kc.run('decoy', timeout=5)  # never answered but by malformed messages: it ends somehow
        await asyncio.sleep(0.2)
        replies = await settle([kc.execute(f'{i}', reply=True, timeout=30) for i in range(5)], 60)
        assert [r['content']['code'] for r in replies] == [str(i) for i in range(5)]
        await settle([decoy_run], 30)  # it ended, one way or another
        assert sent > 500 and len(kc.pending) == 0
        assert (await kc.run('still reading', timeout=10)).status == 'ok'
        assert sum(kc.stats.values()) > 100
    finally:
        await kc.astop_channels()
        fk.stop()


# 4. A frozen kernel (SIGSTOP) fails every waiter promptly, even under a watching manager; it recovers on SIGCONT

async def test_frozen_kernel_fails_waiters_and_recovers():
    async with run_kernel() as (km, kc):
        pid = km.provisioner.process.pid
        run, stream = kc.run(SLEEP), kc.stream(SLEEP)
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            results = await settle([run, stream.__anext__()], 15)
            took = time.monotonic() - start
            assert all(isinstance(r, KernelUnresponsiveError) for r in results), results
            assert took < kc.heartbeat_timeout + 3
            with pytest.raises(KernelUnresponsiveError): kc.execute('1')
        finally: os.kill(pid, signal.SIGCONT)
        for _ in range(50):  # the heartbeat answers again: the client takes requests again
            if kc.router.closed is None: break
            await asyncio.sleep(0.1)
        await kc.interrupt()
        assert (await kc.run('1+1', timeout=20)).status in ('ok', 'aborted')
        assert len(kc.pending) == 0


async def test_a_stalled_client_loop_is_not_a_frozen_kernel():
    async with run_kernel() as (km, kc):
        waiter = kc.execute('import time; time.sleep(6); v = 1', reply=True, timeout=30)
        await asyncio.sleep(0.5)
        time.sleep(4.5)  # the client's own loop stalls for longer than heartbeat_timeout
        assert (await waiter)['content']['status'] == 'ok'


# 5. Unread messages are bounded in bytes as well as in count

async def test_unread_output_is_bounded_in_bytes():
    async with run_kernel() as (km, kc0):
        kc = await km.client(max_queued_bytes=16 * 2**20).start_channels()
        for _ in range(5):
            res = await kc.run('print("x" * 8_000_000)', timeout=60)
            assert len(res.stdout) == 8_000_001
            del res
        assert 16 * 2**20 - 9_000_000 < kc.router.queues['iopub'].nbytes <= 16 * 2**20
        await kc.astop_channels()


# 7. Reading a channel after stop or death raises at once

async def test_get_msg_after_stop_or_death_raises():
    async with run_kernel() as (km, kc):
        await kc.run('1')  # its idle is in: nothing more will come
        await kc.iopub_channel.get_msgs()
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        with pytest.raises(DeadKernelError): await asyncio.wait_for(kc.get_iopub_msg(timeout=None), 10)
        kc.stop_channels()
        with pytest.raises(ChannelsStoppedError): await asyncio.wait_for(kc.get_shell_msg(timeout=None), 1)
    async with run_kernel() as (km, kc):
        kc.stop_channels()
        with pytest.raises(ChannelsStoppedError): await asyncio.wait_for(kc.get_iopub_msg(timeout=None), 1)


# 8. A msg_id is not reused while the reply of a request that timed out may still come

async def test_msg_id_of_a_timed_out_request_is_not_reused():
    async with run_kernel() as (km, kc):
        with pytest.raises(TimeoutError): await kc.execute('import time; time.sleep(0.5); v = "old"', reply=True, timeout=0.1, msg_id='m1')
        with pytest.raises(ValueError, match='fresh msg_id'): kc.execute('v = "new"', reply=True, msg_id='m1')
        mid = kc.execute('import time; time.sleep(0.3)')
        with pytest.raises(TimeoutError): await kc._async_recv_reply(mid, timeout=0.05)
        assert (await kc._async_recv_reply(mid, timeout=10))['content']['status'] == 'ok'  # collecting it again is fine


# 9. An oversized reply fails its request at once; an oversized output marks its result incomplete

async def test_oversized_reply_and_output():
    async with run_kernel() as (km, kc0):
        kc = await km.client(max_message_size=200_000).start_channels()
        start = time.monotonic()
        with pytest.raises(MessageTooLargeError):
            await kc.execute('x = 1', user_expressions={'v': '"y" * 300_000'}, reply=True, timeout=30)
        assert time.monotonic() - start < 5
        res = await kc.run('print("a"); print("z" * 300_000, flush=True); print("b")', timeout=30)
        assert res.status == 'ok' and not res.complete and 'dropped' in res.notes[0]
        assert kc.stats['oversized'] >= 2
        await kc.astop_channels()


# 10/11. A prompt whose request stopped waiting is ended, so the kernel is free for the next request

@pytest.mark.parametrize('kernel', ['python3', 'py'])
async def test_abandoned_prompt_does_not_block_the_kernel(kernel):
    async with run_kernel(kernel) as (km, kc):
        never = asyncio.get_running_loop().create_future()
        with pytest.raises(TimeoutError):
            await kc.execute_interactive('x = input("name? ")', stdin_hook=lambda msg: never, timeout=1, allow_stdin=True)
        assert (await kc.run('1+1', timeout=10)).status in ('ok', 'aborted')  # aborted: behind the EOFError
        seen = []
        r = await kc.execute_interactive('print(repr(input("? ")))', stdin_hook=lambda m: 1/0, output_hook=seen.append,
                                         allow_stdin=True, timeout=10)
        text = ''.join(m['content'].get('text', '') for m in seen if m['msg_type'] == 'stream')
        assert (r['content']['ename'] == 'EOFError') if kernel == 'python3' else text == "''\n"  # ipymini has no EOF


async def test_a_pending_reply_can_become_a_task_and_nan_is_refused():
    async with run_kernel() as (km, kc):
        task = asyncio.create_task(kc.execute('6*7', reply=True))
        run = asyncio.create_task(kc.run('6*7'))
        assert (await task)['content']['status'] == 'ok' and (await run).status == 'ok'
        count = (await kc.execute('1', reply=True))['content']['execution_count']
        for bad in math.nan, -1, math.inf, '5', True:
            with pytest.raises(ValueError, match='timeout'): kc.execute('x = 1', reply=True, timeout=bad)
        assert (await kc.execute('1', reply=True))['content']['execution_count'] == count + 1  # nothing was sent
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', ['python3', 'py'])
async def test_deleting_a_busy_subshell_fails_its_waiters(kernel):
    async with run_kernel(kernel) as (km, kc):
        sid = await kc.create_subshell()
        waiter = kc.execute('import time; time.sleep(2)', reply=True, subshell_id=sid, timeout=60)
        await asyncio.sleep(0.3)
        await kc.delete_subshell(sid)
        start = time.monotonic()
        try: r = await asyncio.wait_for(waiter, 10)
        except SubshellError: assert time.monotonic() - start < 1
        else: assert r['msg_type'] == 'execute_reply'  # the kernel answered (ipymini: an error) before it let the subshell go
        assert len(kc.pending) == 0


# 6. Cancellation during start: tests/test_transport.py (test_cancelling_run_kernel_during_start_leaves_no_kernel)


# 13. A request whose idle never comes ends `iopub_timeout` after its output stopped, marked incomplete

async def test_lost_idle_ends_with_a_note():
    fk = FakeKernel(key=b'k')
    kc = ConKernelClient(session=Session(key=b'k'), iopub_timeout=0.5)
    kc.load_connection_info(fk.connection_info)
    await kc.start_channels(timeout=20)
    try:
        fk.status = lambda parent, state: state == 'busy' and FakeKernel.status(fk, parent, state)  # idle never sent
        start = time.monotonic()
        res = await kc.run('x', timeout=30)
        assert res.status == 'ok' and not res.complete and 'idle' in res.notes[0]
        assert 0.5 <= time.monotonic() - start < 5 and kc.stats['idle_missing'] == 1 and len(kc.pending) == 0
    finally:
        await kc.astop_channels()
        fk.stop()


# 12, 14, 15, 16: remote kernels, through a loopback proxy that cuts, black-holes and tarpits

pytest.importorskip('websockets'), pytest.importorskip('kernel_gateway')
from conkernel.testing import LocalServer
from proxy import Proxy


@pytest.fixture(scope='module')
def server():
    with LocalServer('server', argv=('--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=200',)) as s: yield s


def port_of(url): return int(url.rsplit(':', 1)[1])


async def test_replies_lost_in_a_reconnect_fail_their_waiters(server):
    proxy = await Proxy(port_of(server.url)).start()
    try:
        async with run_kernel(url=proxy.url, token=server.token) as (km, kc):
            waiters = [kc.execute(f'import time; time.sleep(0.3); v = {i}', user_expressions={'v': 'v'}, reply=True, timeout=None)
                       for i in range(6)]
            runs = [kc.run('import time; time.sleep(0.3)') for _ in range(2)]
            await asyncio.sleep(0.1)
            proxy.mode = 'blackhole'  # the server's writes vanish, as into a stalled network
            await asyncio.sleep(1.2)
            proxy.mode = 'pass'
            proxy.cut()  # the connection drops: the client opens it again
            results = await settle(waiters + runs, 30)
            lost = [r for r in results if isinstance(r, ConnectionLostError)]
            assert lost and all(isinstance(r, (dict, ConnectionLostError)) or getattr(r, 'status', None) for r in results), results
            assert 'may have run' in str(lost[0]) and kc.stats['replies_lost'] >= len(lost)
            assert await numbered(kc, 10) and len(kc.pending) == 0
    finally: await proxy.close()


async def test_a_server_that_never_answers_the_handshake_respects_reconnect_timeout(server):
    proxy = await Proxy(port_of(server.url)).start()
    try:
        async with run_kernel(url=proxy.url, token=server.token, reconnect_timeout=2) as (km, kc):
            waiter = kc.execute('import time; time.sleep(60)', reply=True, timeout=None)
            await asyncio.sleep(0.3)
            proxy.mode = 'tarpit'
            proxy.cut()
            start = time.monotonic()
            with pytest.raises(ConnectionLostError): await asyncio.wait_for(waiter, 30)
            assert time.monotonic() - start < 6
            proxy.mode = 'pass'  # so that the kernel can be shut down
    finally: await proxy.close()


async def test_output_the_server_drops_is_reported(server):
    async with run_kernel(url=server.url, token=server.token) as (km, kc):
        res = await kc.run('for i in range(3000): print(i, flush=True)', timeout=120)
        assert res.status == 'ok' and not res.complete and 'rate limit' in res.notes[0]
        assert kc.stats['server_dropped_output'] == 1


async def test_remote_shutdown_inside_the_block_and_env():
    with LocalServer('kernelgateway') as gateway:  # Kernel Gateway passes KERNEL_* variables of the start request on
        async with run_kernel(url=gateway.url, token=gateway.token, env={'KERNEL_FLAVOUR': 'mint'}) as (km, kc):
            assert (await kc.run('import os; print(os.environ.get("KERNEL_FLAVOUR"))', timeout=30)).stdout == 'mint\n'
            await km.shutdown_kernel()  # the exit must not try again


async def test_an_oversized_remote_reply_fails_its_request_and_keeps_the_websocket(server):
    async with run_kernel(url=server.url, token=server.token) as (km, kc0):
        kc = await km.client(max_message_size=200_000).start_channels()
        try:
            with pytest.raises(MessageTooLargeError):
                await kc.execute('x = 1', user_expressions={'v': '"y" * 300_000'}, reply=True, timeout=30)
            res = await kc.run('print("z" * 300_000, flush=True); print("small")', timeout=30)
            assert not res.complete and 'dropped' in res.notes[0] and 'small' in res.stdout
            assert kc.stats['websocket_dropped'] == 0
        finally: await kc.astop_channels()
