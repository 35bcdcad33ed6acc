"Subshells (JEP 91): parallel requests inside one kernel, the context manager's cleanup, kernels without them."
import asyncio, os, signal

import pytest

from conkernel import ChannelsStoppedError, KernelUnresponsiveError, NoSubshellsError, Subshell, SubshellError, run_kernel
from test_requests import until


def value(reply): return reply['content']['user_expressions']['v']['data']['text/plain']


@pytest.mark.parametrize('kernel', ['python3', 'py'])
async def test_subshell_requests_finish_while_the_main_shell_sleeps(kernel):
    async with run_kernel(kernel) as (km, kc):
        subs = [Subshell(kc, await kc.create_subshell()) for _ in range(4)]
        assert sorted(await kc.list_subshells()) == sorted(s.subshell_id for s in subs)
        slow = kc.execute('import time; time.sleep(2)', reply=True)
        replies = await asyncio.gather(*[subs[i % 4].execute(f'{i}', user_expressions={'v': f'{i}*{i}'}, reply=True)
                                         for i in range(20)])
        assert not slow.future.done()  # every subshell reply came while the main shell still slept
        assert [value(r) for r in replies] == [str(i * i) for i in range(20)]
        assert (await slow)['content']['status'] == 'ok'
        for s in subs: await kc.delete_subshell(s.subshell_id)
        assert await kc.list_subshells() == []
        assert len(kc.pending) == 0


async def test_subshell_view_binds_every_request_method():
    async with run_kernel() as (km, kc):
        async with kc.subshell() as sh:
            msg_id = sh.execute('1')
            assert (await kc.get_shell_msg(timeout=10))['parent_header']['msg_id'] == msg_id
            assert (await sh.kernel_info(reply=True))['msg_type'] == 'kernel_info_reply'
            assert sh.session is kc.session  # everything else is the client's own


async def test_subshell_block_deletes_its_subshell_when_the_body_raises():
    async with run_kernel() as (km, kc):
        with pytest.raises(ZeroDivisionError):
            async with kc.subshell() as sh:
                assert await kc.list_subshells() == [sh.subshell_id]
                1 / 0
        assert await kc.list_subshells() == []
        with pytest.raises(SubshellError, match='Unknown subshell'): await kc.delete_subshell(sh.subshell_id)
        assert len(kc.pending) == 0


async def test_kernel_without_subshells_gets_a_clear_error_at_once():
    async with run_kernel('xpython') as (km, kc):
        assert not await kc.supports_subshells()
        with pytest.raises(NoSubshellsError, match="xpython"): await kc.create_subshell(timeout=None)
        with pytest.raises(NoSubshellsError):
            async with kc.subshell(): pass
        assert len(kc.pending) == 0


async def test_run_and_stream_on_subshells_keep_their_own_outputs():
    async with run_kernel() as (km, kc):
        async with kc.subshell() as a, kc.subshell() as b:
            on_main = kc.run('import time\nfor i in range(5): print("main", i, flush=True); time.sleep(0.05)')
            on_a = a.run('import time\nfor i in range(5): print("a", i, flush=True); time.sleep(0.01)')
            streamed = [m async for m in b.stream('print("b", flush=True)')]
            on_main, on_a = await on_main, await on_a
            assert on_main.stdout == ''.join(f'main {i}\n' for i in range(5))
            assert on_a.stdout == ''.join(f'a {i}\n' for i in range(5))
            assert ''.join(m['content']['text'] for m in streamed if m['msg_type'] == 'stream') == 'b\n'  # (one or two pieces)
            assert streamed[-1]['msg_type'] == 'execute_reply'
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', ['python3', 'py'])
async def test_quick_requests_answer_before_a_long_cell_ends(kernel):
    async with run_kernel(kernel) as (km, kc):
        await kc.execute('alpha_one = 1', reply=True)
        # 50 first-time completes race to create the quick subshell: one is made, every caller gets its answer
        replies = await asyncio.gather(*[kc.complete('alpha_', reply=True) for _ in range(50)])
        assert {tuple(r['content']['matches']) for r in replies} == {('alpha_one',)}
        slow = kc.execute('import time; time.sleep(3)', reply=True)
        await asyncio.sleep(0.2)
        rest = await asyncio.gather(kc.complete('alpha_', reply=True), kc.inspect('alpha_one', reply=True),
                                    kc.is_complete('for x in y:', reply=True), kc.eval('alpha_one + 1'))
        assert not slow.future.done()  # every answer came before the long cell's reply: an ordering, not a timing
        assert rest[0]['content']['matches'] == ['alpha_one'] and rest[1]['content']['found']
        assert rest[2]['content']['status'] == 'incomplete' and rest[3] == 2
        assert await kc.list_subshells() == [await kc.quick_subshell()]
        on_main = kc.complete('alpha_', reply=True, subshell_id=None)  # explicitly the main shell: after the cell
        await on_main
        assert slow.future.done()
        assert len(kc.pending) == 0


async def test_quick_subshell_through_restart_stop_and_cancellation():
    async with run_kernel() as (km, kc):
        first = await kc.quick_subshell()
        await km.restart_kernel()
        assert (await kc.complete('impo', reply=True))['content']['matches'][:1] == ['import']
        second = await kc.quick_subshell()
        assert second != first and await kc.list_subshells() == [second]
        # dropped or cancelled before the subshell exists: nothing is left waiting
        await kc.astop_channels()
        await kc.start_channels()
        waiter = asyncio.ensure_future(kc.complete('impo', reply=True))
        await asyncio.sleep(0)
        waiter.cancel()
        kc.complete('impo', reply=True)  # dropped unawaited
        await asyncio.sleep(0.2)
        assert len(kc.pending) == 0
        # stopped while the subshell is being created: every caller hears ChannelsStoppedError
        await kc.astop_channels()
        await kc.start_channels()
        callers = [kc.complete('impo', reply=True) for _ in range(20)] + [kc.eval('1')]
        await asyncio.sleep(0)
        kc.stop_channels()
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert all(isinstance(r, ChannelsStoppedError) for r in results), results
        assert len(kc.pending) == 0
        with pytest.raises(ChannelsStoppedError): kc.complete('x', reply=True)
        await kc.start_channels()


@pytest.mark.parametrize('kernel', ['python3', 'py'])
async def test_the_quick_subshell_outlives_unresponsive_spells(kernel):
    "Each SIGSTOP/SIGCONT used to make a new quick subshell and leave the old one in the kernel"
    async with run_kernel(kernel) as (km, kc0):
        kc = await km.client(heartbeat_timeout=1).start_channels()
        pid = km.provisioner.process.pid
        try:
            await kc.execute('alpha_one = 1', reply=True)
            sid = await kc.quick_subshell()
            for _ in range(3):
                os.kill(pid, signal.SIGSTOP)
                try: await until(lambda: isinstance(kc.router.closed, KernelUnresponsiveError))
                finally: os.kill(pid, signal.SIGCONT)
                await until(lambda: kc.router.closed is None)
                assert (await kc.complete('alpha_', reply=True, timeout=30))['content']['matches'] == ['alpha_one']
            assert await kc.quick_subshell() == sid
            assert await kc.list_subshells() == [sid]
        finally:
            os.kill(pid, signal.SIGCONT)
            await kc.astop_channels()
        await until(lambda: kc0.router.closed is None)
        assert await kc0.list_subshells() == []


@pytest.mark.parametrize('kernel', ['python3', 'py'])
async def test_a_quick_subshell_deleted_by_another_client_is_made_again(kernel):
    """ipykernel answers a request to a deleted subshell with UnknownSubshellError: the client makes a new quick subshell
    and sends the requests that met the old one again there; ipymini makes a subshell under the unknown id itself"""
    async with run_kernel(kernel) as (km, kc):
        other = await km.client().start_channels()
        try:
            await kc.execute('alpha_one = 1', reply=True)
            sid = await kc.quick_subshell()
            await other.delete_subshell(sid)
            replies = await asyncio.gather(*[kc.complete('alpha_', reply=True, timeout=30) for _ in range(5)],
                                           kc.inspect('alpha_one', reply=True, timeout=30),
                                           kc.is_complete('for x in y:', reply=True, timeout=30))
            assert [r['content']['status'] for r in replies] == ['ok'] * 6 + ['incomplete']
            assert all(r['content']['matches'] == ['alpha_one'] for r in replies[:5])
            new = await kc.quick_subshell()
            assert await other.list_subshells() == [new] and (new != sid) == (kernel == 'python3')
            assert await kc.eval('alpha_one + 1') == 2
            assert len(kc.pending) == 0
        finally: await other.astop_channels()


async def test_eval_first_after_the_quick_subshell_was_deleted():
    "eval is a quick request like the others: it meets the deleted subshell, the client makes another and sends it again"
    async with run_kernel('python3') as (km, kc):
        other = await km.client().start_channels()
        try:
            sid = await kc.quick_subshell()
            await other.delete_subshell(sid)
            assert await kc.eval('6 * 7', timeout=30) == 42
            assert await kc.quick_subshell() not in (None, sid)
        finally: await other.astop_channels()


async def test_a_quick_request_is_sent_again_once():
    "If the new quick subshell is unknown too, the caller gets the kernel's error reply: no request goes round for ever"
    async with run_kernel() as (km, kc):
        made, make = [], kc.create_subshell
        async def made_and_deleted(timeout=None):  # another client deletes each quick subshell as soon as it is made
            made.append(await make(timeout))
            await kc.delete_subshell(made[-1])
            return made[-1]
        kc.create_subshell = made_and_deleted
        r = await kc.complete('impo', reply=True, timeout=30)
        assert r['content']['ename'] == 'UnknownSubshellError' and len(made) == 2
        del kc.create_subshell
        assert (await kc.complete('impo', reply=True, timeout=30))['content']['status'] == 'ok'
        assert len(await kc.list_subshells()) == 1 and len(kc.pending) == 0


async def test_quick_requests_on_a_kernel_without_subshells_use_the_main_shell():
    async with run_kernel('xpython') as (km, kc):
        assert await kc.quick_subshell() is None
        assert (await kc.is_complete('for x in y:', reply=True))['content']['status'] == 'incomplete'
        assert len(kc.pending) == 0
