"KernelPool under faults: kills during a workload, churn, cancellation, failing kernelspecs, many acquirers, remote pools."
import asyncio, os, random, signal, sys, threading
from contextlib import asynccontextmanager

import psutil
import pytest
from jupyter_client.kernelspec import KernelSpec
from zmq.eventloop.zmqstream import ZMQStream

from conkernel import ChannelsStoppedError, DeadKernelError, KernelStartError, run_kernel
from conkernel.pool import ConMultiKernelManager, KernelPool, PoolClosedError


def children() -> set:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


def fds() -> int: return len(os.listdir('/proc/self/fd'))


def value(res) -> str: return res.outputs[0]['data']['text/plain']


def kernel_pids(pool, states=('starting', 'warm', 'out', 'idle', 'restarting')) -> list:
    "The process ids of the pool's local kernels in `states` that are alive now"
    return [k.km.provisioner.process.pid for k in list(pool._kernels)
            if k.state in states and k.km is not None and getattr(k.km, 'provisioner', None) is not None and k.km.provisioner.process is not None
            and k.km.provisioner.process.poll() is None]


async def settled(pool, timeout=60):
    "Wait until the pool has `size` warm kernels and nothing starting or restarting"
    await pool.ready(timeout=timeout)
    for _ in range(int(timeout / 0.05)):
        s = pool.stats
        if s['starting'] == s['restarting'] == 0 and s['warm'] >= pool.size: return s
        await asyncio.sleep(0.05)
    raise AssertionError(f"the pool did not settle: {pool.stats}")


@pytest.mark.timeout(120)
async def test_random_kills_during_a_pooled_workload():
    """Warm and in-use kernels killed at random: every caller gets its own reply or a DeadKernelError; the pool refills.

    (A kernel killed while it starts is a failed start: `max_start_failures` of them in a row give the waiting
    callers a KernelStartError, as a kernelspec that crashes at start-up does; `test_kills_at_start_up` below.)"""
    before = children()
    rng = random.Random(14)
    async with KernelPool('py', size=3, max_kernels=5, startup='base = 1000') as pool:
        await pool.ready(timeout=60)
        async def caller(i):
            try:
                async with pool.kernel(timeout=60) as kc:
                    out = []
                    for j in range(3):
                        out.append(value(await kc.run(f'import time; time.sleep(0.02); base + {i * 10 + j}', timeout=30)))
                    return out
            except DeadKernelError as e: return e
        async def killer():
            for _ in range(6):
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                if pids := kernel_pids(pool, ('warm', 'out')): os.kill(rng.choice(pids), signal.SIGKILL)
        results, _ = await asyncio.gather(asyncio.gather(*[caller(i) for i in range(30)]), killer())
        for i, r in enumerate(results):
            assert isinstance(r, DeadKernelError) or r == [str(1000 + i * 10 + j) for j in range(3)], (i, r)
        assert sum(isinstance(r, list) for r in results) >= 15
        s = await settled(pool)
        assert s['died'] >= 1 and s['in_use'] == 0 and s['waiting'] == 0
        async with pool.kernel() as kc: assert value(await kc.run('base')) == '1000'
    assert children() <= before


@pytest.mark.timeout(120)
async def test_churn_leaves_nothing_behind():
    "Acquire/return cycles with restart: no process, FD, thread or task left after aclose"
    async with KernelPool('py', size=1, max_kernels=2) as pool:  # a first pool: imports and lazy globals settle
        async with pool.kernel() as kc: await kc.execute('1', reply=True)
    before, fd0, threads0 = children(), fds(), threading.active_count()
    pool = KernelPool('py', size=2, max_kernels=3)
    async with pool:
        for i in range(12):
            async with pool.kernel() as kc: assert value(await kc.run(f'{i} + 1')) == str(i + 1)
        assert pool.stats['restarted'] >= 1
    assert (len(pool._kernels), len(pool._tasks), len(pool._warm)) == (0, 0, 0)
    assert children() <= before
    for _ in range(40):  # sockets closed without linger are released by ZMQ's I/O thread a moment later
        if fds() <= fd0 + 2: break
        await asyncio.sleep(0.05)
    assert fds() <= fd0 + 2, (fd0, fds())
    assert threading.active_count() <= threads0


@pytest.mark.timeout(60)
async def test_kills_at_start_up_and_restart_are_retried():
    "Kernels killed while they start or restart: the pool still fills, and leaves nothing behind"
    before = children()
    async with KernelPool('py', size=2, max_kernels=3, backoff=0.05, max_start_failures=100) as pool:
        killed = 0
        while killed < 3:
            if pids := kernel_pids(pool, ('starting',)):
                os.kill(pids[0], signal.SIGKILL)
                killed += 1
            await asyncio.sleep(0.01)
        async with pool.kernel(timeout=30) as kc: pass  # returned: restarted
        while not (pids := kernel_pids(pool, ('restarting',))): await asyncio.sleep(0.005)
        os.kill(pids[0], signal.SIGKILL)
        s = await settled(pool)
        assert s['failed'] >= 1 and s['warm'] >= 2  # (a restart that survived the kill can leave a surplus warm kernel)
    assert children() <= before


@pytest.mark.timeout(60)
async def test_a_cancelled_acquire_leaves_no_waiter_and_loses_no_kernel():
    async with KernelPool('py', size=1, max_kernels=1, on_return='keep') as pool:
        await pool.ready(timeout=30)
        held = asyncio.Event()
        release = asyncio.Event()
        async def hold():
            async with pool.kernel():
                held.set()
                await release.wait()
        holder = asyncio.ensure_future(hold())
        await held.wait()
        waiter = asyncio.ensure_future(pool.kernel().__aenter__())
        await asyncio.sleep(0.05)
        assert pool.stats['waiting'] == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert pool.stats['waiting'] == 0
        # cancelled in the same step as the kernel is handed to it: the kernel goes back, unused
        async def take():
            async with pool.kernel(): pass
        taker = asyncio.ensure_future(take())
        await asyncio.sleep(0.05)
        to_warm = pool._to_warm
        def hand_out_and_cancel(k):  # the holder's kernel, ready again with a fresh client, is handed to `taker`
            to_warm(k)
            taker.cancel()
        pool._to_warm = hand_out_and_cancel
        release.set()
        await asyncio.gather(holder, taker, return_exceptions=True)
        del pool._to_warm
        assert taker.cancelled()
        s = pool.stats
        assert (s['warm'], s['in_use'], s['waiting']) == (1, 0, 0), s
        async with pool.kernel(timeout=5) as kc: assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'


@pytest.mark.timeout(60)
async def test_acquire_times_out_and_the_pool_stays_usable():
    async with KernelPool('py', size=1, max_kernels=1, on_return='keep') as pool:
        async with pool.kernel() as kc:
            with pytest.raises(TimeoutError):
                async with pool.kernel(timeout=0.2): pass
            assert pool.stats['waiting'] == 0
        async with pool.kernel(timeout=5) as kc: assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'


@pytest.mark.timeout(90)
@pytest.mark.parametrize('when', [0, 0.05, 0.3, 1.0])
async def test_aclose_while_starting_and_acquiring_and_cancelled(when):
    "aclose at any moment of the start-up, with callers waiting, cancelled itself: nothing is left"
    before = children()
    pool = KernelPool('py', size=2, max_kernels=3)
    await pool.start()
    async def use():
        async with pool.kernel() as kc: await kc.execute('import time; time.sleep(5)', reply=True)
    users = [asyncio.ensure_future(use()) for _ in range(5)]
    await asyncio.sleep(when)
    closing = asyncio.ensure_future(pool.aclose())
    await asyncio.sleep(0.01)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError): await closing
    results = await asyncio.gather(*users, return_exceptions=True)
    assert all(isinstance(r, (PoolClosedError, DeadKernelError)) for r in results), results
    assert (len(pool._kernels), len(pool._tasks)) == (0, 0)
    await pool.aclose()  # again: a no-op
    assert children() <= before
    with pytest.raises(PoolClosedError):
        async with pool.kernel(): pass


@pytest.mark.timeout(60)
async def test_a_kernelspec_that_cannot_start_gives_every_caller_its_error():
    before = children()
    async with KernelPool(argv=['/no/such/kernel', '{connection_file}'], size=2, backoff=0.1) as pool:
        results = await asyncio.gather(*[pool.kernel(timeout=30).__aenter__() for _ in range(10)], return_exceptions=True)
        assert all(isinstance(r, KernelStartError) for r in results), results
        assert isinstance(results[0].__cause__, FileNotFoundError)  # a copy per caller, with the original cause
        with pytest.raises(KernelStartError): await pool.ready(timeout=10)
        assert pool.stats['failed'] >= 2
        await asyncio.sleep(0.5)
        assert pool.stats['failed'] >= 3  # retried, with backoff
    assert children() <= before


@pytest.mark.timeout(60)
async def test_startup_code_that_fails_is_a_start_error():
    async with KernelPool('py', size=1, startup='1/0', backoff=0.1) as pool:
        with pytest.raises(KernelStartError, match='ZeroDivisionError'):
            async with pool.kernel(timeout=30): pass


@pytest.mark.timeout(90)
async def test_many_concurrent_acquirers_are_served_in_order():
    async with KernelPool('py', size=1, max_kernels=3, on_return='keep') as pool:
        order = []
        async def use(i):
            async with pool.kernel(timeout=60) as kc:
                order.append(i)
                return value(await kc.run(f'{i} * 2'))
        tasks = []
        for i in range(60):
            tasks.append(asyncio.ensure_future(use(i)))
            await asyncio.sleep(0)
        assert await asyncio.gather(*tasks) == [str(i * 2) for i in range(60)]
        assert order == sorted(order)
        assert pool.stats['started'] <= 3


@pytest.mark.timeout(60)
async def test_sticky_keys_cap_and_death():
    async with KernelPool('py', size=1, max_kernels=3, max_per_key=1) as pool:
        inside = []
        async def step(i):
            async with pool.kernel('conv') as kc:
                inside.append(i)
                assert len(inside) == 1  # max_per_key=1: one holder at a time
                r = await kc.run(f'n = globals().get("n", 0) + 1; n')
                inside.remove(i)
                return int(value(r))
        assert sorted(await asyncio.gather(*[step(i) for i in range(5)])) == [1, 2, 3, 4, 5]
        async with pool.kernel('conv') as kc: pid = kc.parent.provisioner.process.pid
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if pool.stats['died']: break
            await asyncio.sleep(0.02)
        async with pool.kernel('conv') as kc:  # a fresh kernel for the key
            assert kc.parent.provisioner.process.pid != pid
            assert (await kc.run('n')).ename == 'NameError'
    async with KernelPool('py', size=1, max_kernels=2, max_per_key=2) as pool:
        async with pool.kernel('shared') as a, pool.kernel('shared') as b: assert a is b


async def test_a_kernel_silent_for_a_while_is_not_lost_and_one_silent_for_good_is_not_handed_out():
    async with KernelPool('py', size=1, max_kernels=3, cull_idle=None) as pool:
        async with pool.kernel('conv') as kc:
            await kc.execute('x = 42', reply=True)
            pid = kc.parent.provisioner.process.pid
            os.kill(pid, signal.SIGSTOP)  # frozen while in use: the caller's requests fail meanwhile
            try:
                for _ in range(200):
                    if kc.connection.unresponsive: break
                    await asyncio.sleep(0.05)
                assert kc.connection.unresponsive
            finally: os.kill(pid, signal.SIGCONT)
            for _ in range(200):
                if kc.connection.closed is None: break
                await asyncio.sleep(0.05)
            assert value(await kc.run('x', timeout=20)) == '42'
        async with pool.kernel('conv') as kc:  # the key keeps its kernel, and its variables
            assert kc.parent.provisioner.process.pid == pid and value(await kc.run('x', timeout=20)) == '42'
        assert pool.stats['died'] == 0
        await settled(pool)
        warm = pool._warm[0]
        frozen = warm.km.provisioner.process.pid
        os.kill(frozen, signal.SIGSTOP)  # a warm kernel frozen for good
        try:
            for _ in range(200):
                if warm.kc.connection.unresponsive: break
                await asyncio.sleep(0.05)
            async with pool.kernel(timeout=60) as kc:  # not handed out: another kernel serves
                assert kc.parent.provisioner.process.pid != frozen
                assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'
        finally:
            try: os.kill(frozen, signal.SIGCONT)
            except ProcessLookupError: pass  # the pool shut it down


@pytest.mark.timeout(60)
async def test_idle_keys_are_evicted_for_waiting_callers():
    async with KernelPool('py', size=0, max_kernels=2, cull_idle=None) as pool:
        for key in 'ab':
            async with pool.kernel(key) as kc: await kc.execute(f'k = {key!r}', reply=True)
        assert pool.stats['keys'] == 2
        async with pool.kernel(timeout=30) as kc: assert (await kc.execute('1', reply=True))['content']['status'] == 'ok'
        assert pool.stats['evicted'] == 1 and pool.stats['culled'] == 0


@pytest.mark.timeout(60)
async def test_with_evict_keys_off_a_waiting_caller_never_takes_a_keys_kernel():
    async with KernelPool('py', size=0, max_kernels=1, cull_idle=None, evict_keys=False) as pool:
        async with pool.kernel('conv', timeout=30) as kc: await kc.execute('x = 1', reply=True)
        with pytest.raises(TimeoutError):
            async with pool.kernel(timeout=2): pass
        async with pool.kernel('conv', timeout=30) as kc: assert value(await kc.run('x')) == '1'
        assert pool.stats['evicted'] == 0


@pytest.mark.timeout(90)
async def test_keys_taking_turns_keep_their_kernels_while_another_is_on_its_way():
    "Two keys, size=1, max_kernels=2: the refill kernel serves the second key; neither key's kernel is evicted"
    async with KernelPool('py', size=1, max_kernels=2) as pool:
        for i in range(6):
            key = 'ab'[i % 2]
            async with pool.kernel(key, timeout=60) as kc:
                if i >= 2: assert value(await kc.run('mine')) == repr(key)
                await kc.execute(f'mine = {key!r}', reply=True)
        assert pool.stats['evicted'] == 0


@pytest.mark.timeout(60)
async def test_startup_code_leaves_no_history():
    async with KernelPool('py', size=1, startup='secret = 1') as pool:
        async with pool.kernel(timeout=60) as kc:
            assert (await kc.execute('1', reply=True))['content']['execution_count'] == 1
            assert await kc.eval('secret') == 1 and 'secret' not in str(await kc.eval('In'))


@pytest.mark.timeout(60)
async def test_surplus_warm_kernels_are_culled_back_to_size():
    "After a burst, kernels returned beyond `size` are shut down once they idle for `cull_idle`"
    async with KernelPool('py', size=1, max_kernels=3, on_return='keep', cull_idle=1) as pool:
        held = [pool.kernel() for _ in range(3)]
        kcs = await asyncio.gather(*[h.__aenter__() for h in held])
        assert len({id(kc) for kc in kcs}) == 3
        for h in held: await h.__aexit__(None, None, None)
        for _ in range(500):  # each is warm again once it has its fresh client
            if pool.stats['warm'] >= 2: break
            await asyncio.sleep(0.01)
        assert pool.stats['warm'] >= 2, pool.stats
        for _ in range(100):
            if pool.stats['warm'] == 1 and len(pool._kernels) == 1: break
            await asyncio.sleep(0.05)
        assert (pool.stats['warm'], len(pool._kernels)) == (1, 1), pool.stats


# Isolation: what one caller did with its client is not the next caller's
OPEN_T = "from comm import create_comm\nopened = create_comm(target_name='t')"  # the kernel opens a comm for target 't'


async def streams(kc) -> list:
    "The stream outputs waiting, unread, in `kc`'s iopub queue"
    return [m['content']['text'] for m in await kc.iopub_channel.get_msgs() if m['msg_type'] == 'stream']


@pytest.mark.timeout(90)
@pytest.mark.parametrize('on_return', ['restart', 'keep', 'discard'])
async def test_startup_output_waits_in_no_callers_queue(on_return):
    async with KernelPool('py', size=1, max_kernels=1, on_return=on_return, startup='print("warming up")') as pool:
        for _ in range(2):  # the first kernel, then the returned one (restarted: startup ran again; kept; or a new one)
            async with pool.kernel(timeout=60) as kc:
                await kc.execute('1', reply=True)
                assert await streams(kc) == []
                await kc.run('print("mine")')
                assert await streams(kc) == ['mine\n']  # (the caller's own output is there)


@pytest.mark.timeout(90)
@pytest.mark.parametrize('on_return', ['restart', 'keep', 'discard'])
async def test_what_a_caller_set_on_its_client_is_not_the_next_callers(on_return):
    "Comm targets, traits, unread messages, requests left running: the next caller's client has none of them"
    async with KernelPool('py', size=1, max_kernels=1, on_return=on_return) as pool:
        a_opened = []
        async with pool.kernel() as a:
            a.register_target('t', lambda comm, msg: a_opened.append(comm))
            a.reply_timeout, a.allow_stdin, a.quick_requests = 5, False, 'shell'
            await a.run('print("a was here")')
            left = a.execute('import time; time.sleep(1)', reply=True)  # not awaited: running when the kernel goes back
            await asyncio.sleep(0.1)
        async with pool.kernel(timeout=60) as b:
            assert (await b.run(OPEN_T)).status == 'ok'
            assert a_opened == []  # the kernel's comm_open reached no callback of a's
            assert b is not a and len(b.pending) == 0
            assert (b.reply_timeout, b.allow_stdin, b.quick_requests) == (60, True, 'subshell')
            assert b.comms.targets == {} and len(b.comms) == 0
            assert 'a was here' not in ''.join(await streams(b))
        with pytest.raises(ChannelsStoppedError, match='back to the pool'): await left
        with pytest.raises(ChannelsStoppedError): a.execute('1')  # the given-back client sends nothing more


@pytest.mark.timeout(60)
async def test_a_sticky_key_keeps_its_client_until_it_is_let_go():
    "The same conversation gets its own client back, targets and settings included; once the key goes, a fresh one"
    async with KernelPool('py', size=0, max_kernels=1, cull_idle=None, on_return='keep') as pool:
        opened = []
        async with pool.kernel('conv', timeout=30) as a:
            a.register_target('t', lambda comm, msg: opened.append(comm))
            a.reply_timeout = 5
            await a.execute('x = 1', reply=True)
        async with pool.kernel('conv') as a2:
            assert a2 is a and a2.reply_timeout == 5
            assert (await a2.run(OPEN_T)).status == 'ok' and len(opened) == 1
        async with pool.kernel(timeout=30) as b:  # max_kernels=1: the idle key is let go for this caller
            assert pool.stats['evicted'] == 1 and b is not a and b.reply_timeout == 60
            assert (await b.run('x')).ename == 'NameError'  # the key's variables reach no other caller, even with 'keep'
            await b.run("opened2 = create_comm(target_name='t')")
            assert len(opened) == 1 and b.comms.targets == {}


@pytest.mark.timeout(60)
async def test_keep_drops_the_callers_subshells():
    async with KernelPool('py', size=1, max_kernels=1, on_return='keep') as pool:
        async with pool.kernel() as a:
            await a.execute('kept = 1', reply=True)
            await a.create_subshell()
            await a.complete('ke', reply=True)  # on the client's quick subshell
            assert len(await a.list_subshells()) == 2
        async with pool.kernel(timeout=30) as b:
            assert await b.list_subshells() == []
            assert value(await b.run('kept')) == '1'


@pytest.mark.timeout(90)
@pytest.mark.parametrize('left', ['prompt', 'debugger'])
async def test_keep_restarts_a_kernel_the_caller_left_waiting_or_debugged(left):
    "A prompt no one answers, or a debugger attached with its breakpoints, would hold up the next caller: restarted"
    async with KernelPool('py' if left == 'prompt' else 'python3', size=1, max_kernels=1, on_return='keep') as pool:
        async with pool.kernel(timeout=60) as a:
            await a.execute('kept = 1', reply=True)
            if left == 'prompt':
                a.execute('input("name? ")', allow_stdin=True)  # fire and forget: no request waits
                assert (await a.stdin_channel.get_msg(timeout=10))['msg_type'] == 'input_request'
            else: await a.debugger().start()
        async with pool.kernel(timeout=60) as b:
            assert (await b.run('kept', timeout=20)).ename == 'NameError'
            assert pool.stats['restarted'] == 1


# ConMultiKernelManager: AsyncMultiKernelManager's behaviour with conkernel's kernels
async def killed_and_restarted(km, also=lambda: True):
    "Kill `km`'s kernel; wait until its restarter has started another that answers (and `also()` holds)"
    pid = km.provisioner.process.pid
    os.kill(pid, signal.SIGKILL)
    for _ in range(300):  # the restarter polls once a second
        await asyncio.sleep(0.1)
        process = getattr(km.provisioner, 'process', None)
        if process is not None and process.pid != pid and await km.is_alive() and also(): return
    raise AssertionError("the killed kernel was not restarted")


@asynccontextmanager
async def multikernel():
    "A `ConMultiKernelManager` with one kernel started: `(mkm, kernel_id)`; every kernel shut down after"
    mkm = ConMultiKernelManager()
    try: yield mkm, await mkm.start_kernel(kernel_name='py')
    finally: await mkm.shutdown_all(now=True)
    assert mkm.list_kernel_ids() == []


@pytest.mark.timeout(60)
async def test_multikernelmanager_restarts_a_killed_kernel_and_its_clients_work_again():
    "As jupyter_client's: the restarter's restart (with `newports=True` early on) leaves existing clients usable"
    async with multikernel() as (mkm, kid):
        km = mkm.get_kernel(kid)
        kc = await km.client().start_channels(timeout=30)
        try:
            waiter = kc.execute('import time; time.sleep(30)', reply=True, timeout=None)
            await killed_and_restarted(km, lambda: kc.router.closed is None)
            with pytest.raises(DeadKernelError): await asyncio.wait_for(waiter, 10)
            assert (await kc.execute('1 + 1', reply=True, timeout=10))['content']['status'] == 'ok'
            new = await km.client().start_channels(timeout=30)
            try: assert (await new.execute('1 + 1', reply=True))['content']['status'] == 'ok'
            finally: await new.astop_channels()
        finally: await kc.astop_channels()


@pytest.mark.timeout(60)
async def test_restart_with_new_ports_reconnects_clients_to_them():
    async with run_kernel('py') as (km, kc):
        await kc.execute('x = 1', reply=True)
        kc.shell_port = kc.iopub_port = 1  # what the client knew of the ports is stale: it reconnects at the manager's
        await km.restart_kernel(now=True, newports=True)
        assert (kc.shell_port, kc.iopub_port) == (km.shell_port, km.iopub_port)
        r = await kc.execute('x', reply=True, timeout=10)
        assert r['content']['ename'] == 'NameError'  # the new kernel, through the new ports


@pytest.mark.timeout(60)
async def test_a_restarted_kernel_that_dies_at_once_leaves_restart_kernel_returning(caplog):
    "jupyter_client's restarter counts a restart only when restart_kernel returns: a client that cannot reconnect is logged"
    async with run_kernel('py') as (km, kc):
        km._kernel_spec = KernelSpec(argv=[sys.executable, '-c', 'import sys; sys.exit(3)'], display_name='dies', language='')
        await km.restart_kernel(now=True)
        assert isinstance(kc.router.closed, DeadKernelError)
        assert 'could not reconnect' in caplog.text
        with pytest.raises(DeadKernelError): await kc.execute('1', reply=True, timeout=10)


@pytest.mark.timeout(60)
async def test_multikernelmanager_connect_gives_streams():
    async with multikernel() as (mkm, kid):
        stream = mkm.connect_iopub(kid)
        assert isinstance(stream, ZMQStream)
        got = []
        stream.on_recv(got.append)
        kc = await mkm.get_kernel(kid).client().start_channels(timeout=30)
        try:
            for _ in range(100):
                await kc.kernel_info(reply=True)  # its status messages reach the stream too
                if got: break
                await asyncio.sleep(0.05)
            assert got
        finally:
            stream.close()
            await kc.astop_channels()


# Remote pools, through a local Kernel Gateway and a Jupyter Server
for mod in 'websockets', 'httpx', 'kernel_gateway', 'jupyter_server':
    try: __import__(mod)
    except ImportError: remote = pytest.mark.skip(f"{mod} is not installed")
    else: remote = pytest.mark.parametrize('app', ['kernelgateway', 'server'])


@pytest.fixture(scope='module')
def servers():
    from conkernel.testing import LocalServer
    started = {}
    yield lambda app: started.get(app) or started.setdefault(app, LocalServer(app))
    for s in started.values(): s.stop()


@remote
@pytest.mark.timeout(120)
async def test_remote_pool_workload_sticky_and_kill(servers, app):
    server = servers(app)
    async with KernelPool('py', url=server.url, token=server.token, size=2, max_kernels=3, startup='w = 7') as pool:
        await pool.ready(timeout=60)
        async def work(i):
            async with pool.kernel(timeout=60) as kc: return value(await kc.run(f'w * {i}'))
        assert await asyncio.gather(*[work(i) for i in range(8)]) == [str(7 * i) for i in range(8)]
        async with pool.kernel('k') as kc:
            await kc.execute('mine = 5', reply=True)
            remote_pid = int(value(await kc.run('import os; os.getpid()')))
        async with pool.kernel('k') as kc: assert value(await kc.run('mine')) == '5'
        # the server's kernel dies while a caller holds it: the caller gets a clear error, the pool refills
        async with pool.kernel('k') as kc:
            waiter = kc.execute('import time; time.sleep(30)', reply=True, timeout=60)
            await asyncio.sleep(0.3)
            os.kill(remote_pid, signal.SIGKILL)
            with pytest.raises(DeadKernelError): await waiter
        s = await settled(pool)
        assert s['died'] == 1 and s['warm'] == 2
        async with pool.kernel('k') as kc: assert (await kc.run('mine')).ename == 'NameError'
    async with KernelPool('py', url=server.url, token='wrong', size=1, backoff=0.1) as pool:
        with pytest.raises(KernelStartError, match='40[13]'):
            async with pool.kernel(timeout=30): pass
