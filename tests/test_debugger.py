"The debugger (DAP over control) on ipykernel and xeus-python: a breakpoint in a cell, locals, continue, errors, cleanup, death and stop."
import asyncio, os, signal, time

import pytest

from conkernel import ChannelsStoppedError, ConKernelClient, DeadKernelError, DebuggerError, NoDebuggerError, run_kernel

CELL = "def double(x):\n    y = x * 2\n    return y\nresult = double(21)"


async def test_breakpoint_locals_continue_and_the_cell_replies():
    async with run_kernel() as (km, kc):
        async with kc.debugger(timeout=20) as dbg:
            assert dbg.info['hashMethod'] == 'Murmur2' and dbg.capabilities.get('supportsConfigurationDoneRequest')
            with pytest.raises(RuntimeError, match='another debugging session'): await kc.debugger().start()
            path = await dbg.break_in(CELL, [3])
            assert path.startswith(dbg.info['tmpFilePrefix'])
            ran = kc.execute(CELL, reply=True)
            stopped = await dbg.wait_event('stopped', timeout=10)
            thread = stopped['body']['threadId']
            frames = await dbg.stack_trace(thread)
            assert (frames[0]['name'], frames[0]['line'], frames[0]['source']['path']) == ('double', 3, path)
            scopes = await dbg.scopes(frames[0]['id'])
            names = {v['name']: v['value'] for v in await dbg.variables(next(s for s in scopes if s['name'] == 'Locals')['variablesReference'])}
            assert (names['x'], names['y']) == ('21', '42')
            assert not ran.future.done()  # the cell waits at the breakpoint
            with pytest.raises(DebuggerError, match='stackTrace failed') as e: await dbg.stack_trace(99999)
            assert e.value.response['success'] is False
            with pytest.raises(TimeoutError): await dbg.wait_event('no such event', timeout=0.1)
            await dbg.continue_(thread)
            reply = await asyncio.wait_for(ran, 10)
            assert reply['content']['status'] == 'ok'
            with pytest.raises(DebuggerError, match='no thread is stopped'): await dbg.continue_()  # not sent: it would wedge ipykernel
        assert kc.router.watchers.get('debug_event') is None
        # the kernel runs code as before: no breakpoint left
        again = await kc.execute(CELL, user_expressions={'r': 'result'}, reply=True, timeout=10)
        assert again['content']['user_expressions']['r']['data']['text/plain'] == '42'
        # leaving the block while stopped lets the cell run on
        async with kc.debugger() as dbg:
            await dbg.break_in(CELL, [2])
            ran = kc.execute(CELL, reply=True)
            await dbg.wait_event('stopped', timeout=10)
            assert (await dbg.locals())['x'] == '21'
        assert (await asyncio.wait_for(ran, 10))['content']['status'] == 'ok'
        # stopping the channels ends a waiting wait_event at once
        dbg = kc.debugger()
        await dbg.start()
        waiter = asyncio.create_task(dbg.wait_event('stopped', timeout=30))
        await asyncio.sleep(0.05)
        kc.stop_channels()
        done, _ = await asyncio.wait([waiter], timeout=2)
        assert done and isinstance(waiter.exception(), ChannelsStoppedError)
        await dbg.stop()  # nothing to tell a stopped client: returns
        assert len(kc.pending) == 0


async def stop_read_continue(kc, cell:str, line:int, name:str) -> str:
    "Break at `line` of `cell`, run it, read local `name` where it stopped, continue: the value read (the cell must reply ok)"
    async with kc.debugger(timeout=20) as dbg:
        await dbg.break_in(cell, [line])
        ran = kc.execute(cell, reply=True)
        await dbg.wait_event('stopped', timeout=10)
        value = (await dbg.locals())[name]
        await dbg.continue_()
        assert (await asyncio.wait_for(ran, 10))['content']['status'] == 'ok'
    return value


LOOP = "tot = 0\nfor i in range(50):\n    tot += i\ntot"


async def leave_stopped_in_a_loop(kc):
    "Leave the session while stopped at a breakpoint inside a loop: the cell finishes, and a new session works"
    async with kc.debugger(timeout=10) as dbg:
        await dbg.break_in(LOOP, [3])
        ran = kc.execute(LOOP, user_expressions={'t': 'tot'}, reply=True)
        await dbg.wait_event('stopped', timeout=10)
    reply = await asyncio.wait_for(ran, 10)
    assert reply['content']['user_expressions']['t']['data']['text/plain'] == '1225'
    assert await stop_read_continue(kc, CELL, 3, 'y') == '42'  # the debugger still answers


async def test_concurrent_and_cancelled_continue_and_leaving_in_a_loop():
    async with run_kernel() as (km, kc):
        async with kc.debugger(timeout=10) as dbg:
            await dbg.break_in(CELL, [3])
            ran = kc.execute(CELL, reply=True)
            await dbg.wait_event('stopped', timeout=10)
            first, second = await asyncio.gather(dbg.continue_(), dbg.continue_(), return_exceptions=True)
            assert first['success'] and isinstance(second, DebuggerError) and 'no thread is stopped' in str(second)
            assert (await asyncio.wait_for(ran, 10))['content']['status'] == 'ok'
            ran = kc.execute(CELL, reply=True)  # the breakpoint is still set
            await dbg.wait_event('stopped', timeout=10)
            going = asyncio.ensure_future(dbg.continue_())
            await asyncio.sleep(0)  # sent, not answered yet
            going.cancel()
            assert dbg.stopped == {}  # so leaving sends no second continue (it would never be answered)
            assert (await asyncio.wait_for(ran, 10))['content']['status'] == 'ok'
        await leave_stopped_in_a_loop(kc)
        assert (await kc.kernel_info(reply=True, timeout=5))['content']['status'] == 'ok'


async def test_breakpoint_on_xeus_python():
    async with run_kernel('xpython') as (km, kc):  # one request at a time: xeus-python stalls on pipelines
        assert await stop_read_continue(kc, CELL, 3, 'y') == '42'
        await leave_stopped_in_a_loop(kc)
        assert (await kc.execute('1', reply=True, timeout=10))['content']['status'] == 'ok'
        assert len(kc.pending) == 0


async def test_kill_ends_a_waiting_wait_event():
    async with run_kernel() as (km, kc):
        dbg = kc.debugger()
        await dbg.start()
        waiter = asyncio.create_task(dbg.wait_event('stopped', timeout=30))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        done, _ = await asyncio.wait([waiter], timeout=5)
        assert done and time.monotonic() - start < 3
        assert isinstance(waiter.exception(), DeadKernelError)
        assert not dbg.started and kc.router.watchers.get('debug_event') is None  # the session ended with its kernel
        with pytest.raises(DeadKernelError): await dbg.request('debugInfo')
        await dbg.stop()
        assert len(kc.pending) == 0


def test_a_kernel_without_a_debugger_is_refused():
    kc = ConKernelClient()
    kc.kernel_info_reply = {'content': {'implementation': 'somekernel', 'implementation_version': '1', 'supported_features': []}}
    with pytest.raises(NoDebuggerError, match='somekernel 1 has no debugger'): kc.debugger()
    kc.kernel_info_reply['content']['debugger'] = True  # as ipymini (and ipykernel 6) say it
    assert kc.debugger() is not None
    kc.kernel_info_reply['content']['implementation'] = 'ipymini'  # says so, but answers no cell once attached
    with pytest.raises(NoDebuggerError, match='no execute_reply and no idle status to any client'): kc.debugger()
