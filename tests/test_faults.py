"Lifecycle and fault tests: kernel death, restart, interrupt, timeouts, bad input from the wire, memory, security."
import asyncio, logging, os, signal, stat, sys
from contextlib import asynccontextmanager
from queue import Empty

import pytest, zmq
from jupyter_client.session import Session

from conkernel import ConKernelClient, DeadKernelError, KernelRestartedError, KernelUnresponsiveError, MessageTooLargeError, run_kernel
from conkernel.manager import ProcessWatch
from fakekernel import FakeKernel

SLEEP = 'import time; time.sleep(30)'


@asynccontextmanager
async def fake_client(key=b'fake-key', **traits):
    "A FakeKernel and a started ConKernelClient connected to it; both always stopped"
    fk = FakeKernel(key=key)
    kc = ConKernelClient(**traits)
    kc.load_connection_info(fk.connection_info)
    try:
        await kc.start_channels(timeout=20)
        yield fk, kc
        assert len(kc.pending) == 0
    finally:
        kc.stop_channels()
        fk.stop()


@asynccontextmanager
async def kernel(name='python3'):
    "`run_kernel`, checking that the body left no request in flight"
    async with run_kernel(name) as (km, kc):
        yield km, kc
        assert len(kc.pending) == 0


async def settle(waiters, timeout=20):
    "Results of `waiters` (exceptions included); fails the test rather than hang"
    return await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), timeout)


# Death

async def test_kill_fails_every_waiter_and_later_calls():
    async with kernel() as (km, kc):
        waiters = [kc.execute(SLEEP, reply=True)] + [kc.execute(f'{i}', reply=True) for i in range(99)]
        reader = asyncio.ensure_future(kc.shell_channel.get_msg(timeout=None))
        await asyncio.sleep(0.5)
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        results = await settle(waiters + [reader])
        assert [type(r).__name__ for r in results] == ['DeadKernelError'] * len(results)  # by name: nbclient, once loaded, joins the class
        assert 'process died' in str(results[0])  # the manager's process watch, not the slower heartbeat
        assert len(kc.pending) == 0
        with pytest.raises(DeadKernelError): kc.execute('1')
        with pytest.raises(DeadKernelError): await kc.kernel_info(reply=True)


async def test_os_exit_in_user_code():
    async with kernel() as (km, kc):
        with pytest.raises(DeadKernelError, match='exit code 3'):
            await asyncio.wait_for(kc.execute('import os; os._exit(3)', reply=True), 20)
        assert len(kc.pending) == 0


async def test_heartbeat_notices_death_of_a_kernel_started_elsewhere():
    async with kernel() as (km, kc):
        other = ConKernelClient(connection_file=km.connection_file)
        other.load_connection_file()
        await other.start_channels()
        try:
            waiters = [other.execute(SLEEP, reply=True)] + [other.execute(f'{i}', reply=True) for i in range(9)]
            await asyncio.sleep(0.5)
            os.kill(km.provisioner.process.pid, signal.SIGKILL)
            results = await settle(waiters)
            assert [type(r).__name__ for r in results] == ['KernelUnresponsiveError'] * 10  # a DeadKernelError
            assert 'heartbeat' in str(results[0])
            assert len(other.pending) == 0
            with pytest.raises(DeadKernelError): other.execute('1')
        finally: other.stop_channels()


async def test_process_watch_without_pidfd(monkeypatch):
    monkeypatch.delattr(os, 'pidfd_open', raising=False)
    async with kernel() as (km, kc):
        assert km._watch.timer is not None  # the polling fallback
        waiter = kc.execute(SLEEP, reply=True)
        await asyncio.sleep(0.3)
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        with pytest.raises(DeadKernelError, match='process died'): await asyncio.wait_for(waiter, 20)


async def test_shutdown_fails_waiters_and_stops_the_watch():
    async with kernel() as (km, kc):
        waiter = kc.execute(SLEEP, reply=True)
        await km.shutdown_kernel(now=True)
        with pytest.raises(DeadKernelError, match='shut down'): await waiter
        assert not km.watching_process
        assert len(kc.pending) == 0


# Restart

async def test_restart_fails_outstanding_requests_then_client_works():
    async with kernel() as (km, kc):
        await kc.execute('x = 1', reply=True)
        waiters = [kc.execute(SLEEP, reply=True)] + [kc.execute(f'{i}', reply=True) for i in range(9)]
        await km.restart_kernel(now=True)
        results = await settle(waiters)
        assert [type(r).__name__ for r in results] == ['KernelRestartedError'] * 10
        assert len(kc.pending) == 0
        reply = await kc.execute('x', stop_on_error=False, reply=True, timeout=20)
        assert reply['content']['ename'] == 'NameError'  # the new kernel
        assert (await kc.execute('y = 2', reply=True))['content']['status'] == 'ok'
        km.provisioner.process.kill()  # the new process is watched too
        with pytest.raises(DeadKernelError, match='process died'): await asyncio.wait_for(kc.execute(SLEEP, reply=True), 20)


# Interrupt and stop_on_error

@pytest.mark.parametrize('mode', ['signal', 'message'])
async def test_interrupt_stops_the_running_request_and_aborts_the_queued(mode):
    async with kernel() as (km, kc):
        km.kernel_spec.interrupt_mode = mode
        running = kc.execute(SLEEP, reply=True)
        queued = [kc.execute(f'{i}', reply=True) for i in range(5)]
        await asyncio.sleep(0.5)
        await kc.interrupt()
        reply = await asyncio.wait_for(running, 20)
        assert (reply['content']['status'], reply['content']['ename']) == ('error', 'KeyboardInterrupt')
        assert [(await q)['content']['status'] for q in queued] == ['aborted'] * 5
        await asyncio.sleep(0.2)  # ipykernel aborts what arrives until it has flushed its queue
        assert (await kc.execute('1+1', reply=True))['content']['status'] == 'ok'
        assert len(kc.pending) == 0


async def test_stop_on_error():
    async with kernel() as (km, kc):
        failing, after = kc.execute('1/0', reply=True), kc.execute('a = 1', reply=True)
        assert (await failing)['content']['status'] == 'error'
        assert (await after)['content']['status'] == 'aborted'
        await asyncio.sleep(0.2)  # ipykernel aborts what arrives until it has flushed its queue
        failing, after = kc.execute('1/0', stop_on_error=False, reply=True), kc.execute('a = 1', reply=True)
        assert (await failing)['content']['status'] == 'error'
        assert (await after)['content']['status'] == 'ok'


# Timeouts and cancellation

async def test_late_replies_reach_nobody_and_are_counted():
    async with fake_client() as (fk, kc):
        before = [kc.stats[k] for k in ('timed_out', 'abandoned', 'late')]  # start-up may have timed out a kernel_info
        with pytest.raises(TimeoutError): await kc.execute('sleep:0.3', reply=True, timeout=0.05)
        assert len(kc.pending) == 0
        task = asyncio.ensure_future(kc.execute('sleep:0.3', reply=True))
        await asyncio.sleep(0.05)
        assert len(kc.pending) == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert len(kc.pending) == 0
        after = await kc.execute('after', reply=True, timeout=10)  # answered after both late replies
        assert after['content']['code'] == 'after'
        assert [kc.stats[k] - b for k,b in zip(('timed_out', 'abandoned', 'late'), before)] == [1, 1, 2]
        assert kc.router.abandoned == {}
        with pytest.raises(Empty): await kc.get_shell_msg(timeout=0.1)


# Bad input from the wire

async def test_every_kind_of_bad_input_is_dropped_and_counted(caplog):
    caplog.set_level(logging.WARNING, 'conkernel')
    async with fake_client(max_message_size=100_000) as (fk, kc):
        def expected(kind):  # an oversized reply is the request's reply: it fails, the fake kernel's later one is late
            return MessageTooLargeError if kind == 'oversized' else {'status': 'ok', 'code': kind}
        for kind in FakeKernel.BAD:  # one at a time, then all in flight together
            r = (await settle([kc.execute(kind, reply=True, timeout=10)]))[0]
            assert (type(r) if isinstance(r, Exception) else r['content']) == expected(kind)
        replies = await settle([kc.execute(kind, reply=True, timeout=10) for kind in FakeKernel.BAD * 3])
        assert [type(r) if isinstance(r, Exception) else r['content'] for r in replies] == [expected(k) for k in FakeKernel.BAD * 3]
        for kind in FakeKernel.BAD: assert kc.stats[kind] == 4, kind
        logged = [r.getMessage() for r in caplog.records if 'dropped a bad message' in r.getMessage()]
        assert len(logged) == len(FakeKernel.BAD)
        assert not kc.router.queues['shell'].items and 'unclaimed_shell' not in kc.stats
        for _ in range(250):  # the fake kernel's true replies to the four oversized ones, which may still be on their way
            if kc.stats['late'] >= 4: break
            await asyncio.sleep(0.02)
        assert kc.stats['late'] == 4
        assert (await kc.execute('still reading', reply=True))['content']['status'] == 'ok'


async def test_an_iopub_message_of_an_unlisted_type_is_delivered_and_counted():
    async with fake_client() as (fk, kc):
        mine = []
        reply = await kc.execute_interactive('unlisted_iopub', output_hook=mine.append, timeout=10)
        assert reply['content']['status'] == 'ok'
        assert [m['msg_type'] for m in mine] == ['status', 'x_custom_event', 'status']
        assert mine[1]['content'] == {'n': 1} and mine[1]['parent_header']['msg_id'] == reply['parent_header']['msg_id']
        seen = []
        while len(seen) < 3:  # get_iopub_msg sees the whole stream, start-up messages included
            m = await kc.get_iopub_msg(timeout=5)
            if m['parent_header'].get('msg_id') == reply['parent_header']['msg_id']: seen.append(m['msg_type'])
        assert seen == ['status', 'x_custom_event', 'status']
        assert kc.stats['unlisted_iopub'] == 1 and 'unknown_type' not in kc.stats


# Bounded memory

async def test_ten_thousand_requests_leave_nothing_behind():
    async with fake_client() as (fk, kc):
        loop = asyncio.get_running_loop()
        waiters = [kc.execute(str(i), reply=True, timeout=300) for i in range(10_000)]
        assert len(kc.pending) == 10_000
        replies = await settle(waiters, timeout=300)
        assert [r['content']['code'] for r in replies] == [str(i) for i in range(10_000)]
        assert len(kc.pending) == 0 and kc.router.abandoned == {}
        assert len(kc.router.queues['shell']) == 0
        assert all(len(q) <= q.maxlen for q in kc.router.queues.values())
        assert len([h for h in loop._scheduled if not h.cancelled()]) < 10  # no request timers left


# Security defaults

async def test_curve_encryption_and_private_connection_file(caplog):
    caplog.set_level(logging.DEBUG)
    async with kernel() as (km, kc):
        assert km.transport_encryption == 'auto' and km.curve_publickey
        for name in 'shell', 'iopub', 'stdin', 'control':
            assert getattr(kc, f'{name}_channel').socket.getsockopt(zmq.MECHANISM) == zmq.CURVE
        assert stat.S_IMODE(os.stat(km.connection_file).st_mode) == 0o600
        assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'
        plain = kc.context.socket(zmq.DEALER)  # no curve: the kernel must not answer
        try:
            plain.connect(f'tcp://{km.ip}:{km.shell_port}')
            kc.session.send(plain, 'kernel_info_request', {})
            assert not plain.poll(1000)
        finally: plain.close(0)
        secrets = [km.session.key.decode(), km.curve_secretkey.decode()]
        shown = [repr(kc), repr(km), repr(kc.session), repr(kc.kernel_transport.wire), repr(kc.pending), str(dict(kc.stats))]
        shown += [r.getMessage() for r in caplog.records]
        assert not [s for s in shown for secret in secrets if secret in s]


async def test_empty_key_refused_unless_allowed():
    with pytest.raises(ValueError, match='no key'):
        async with fake_client(key=b''): pass
    with pytest.warns(UserWarning, match='not signed'):
        async with fake_client(key=b'', allow_unsigned=True) as (fk, kc):
            assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'


async def test_abandoned_and_signature_histories_are_bounded():
    from conkernel.router import Router
    from conkernel.wire import WireReader
    r = Router(maxlen=3)
    for i in range(10): r.forget(f'm{i}', r.register(f'm{i}', 'execute_request'))
    assert list(r.abandoned) == ['m7', 'm8', 'm9'] and r.stats['abandoned'] == 10
    s = Session(key=b'k')
    w = WireReader(s, history=3)
    for i in range(10): w.parse(s.serialize(s.msg('status', {'execution_state': 'idle'})), 'iopub')
    assert len(w.seen) == 3


async def test_a_kernel_that_dies_starting_is_started_once_more(tmp_path, caplog):
    "As when another process takes one of its ports before it binds: the first kernel exits at once, the next one runs"
    code = ("import os, sys\n"
            "if not os.path.exists(sys.argv[1]): open(sys.argv[1], 'w').close(); sys.exit(1)\n"
            "del sys.argv[1]\n"
            "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()")
    argv = [sys.executable, '-c', code, str(tmp_path / 'died once'), '-f', '{connection_file}']
    async with run_kernel(argv=argv) as (km, kc):
        assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'
    assert 'died while starting' in caplog.text
    with pytest.raises(DeadKernelError):  # one that always dies: its error, after the second try
        async with run_kernel(argv=[sys.executable, '-c', 'import sys; sys.exit(1)', '{connection_file}']): pass
