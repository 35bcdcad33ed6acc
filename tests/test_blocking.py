"BlockingConKernelClient: many threads at once, submit, attach, inside a running loop, errors in the caller's thread."
import asyncio, os, signal, threading, time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conkernel import BlockingConKernelClient, ChannelsStoppedError, ConKernelClient, DeadKernelError, blocking_kernel, run_kernel


def own(kc, i):
    r = kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True)
    return r['content']['user_expressions']['v']['data']['text/plain']


def test_sixteen_threads_each_get_their_own_replies_and_no_thread_is_left():
    before = threading.active_count()
    with blocking_kernel() as kc:
        assert isinstance(kc, BlockingConKernelClient)
        def worker(t): return [own(kc, t * 1000 + j) == str(t * 1000 + j) for j in range(50)]
        with ThreadPoolExecutor(16) as pool: results = list(pool.map(worker, range(16)))
        assert all(all(r) for r in results) and sum(map(len, results)) == 800
        assert kc.pending == {}
    assert threading.active_count() == before


def test_submit_returns_a_future_of_the_run_result():
    with blocking_kernel() as kc:
        futures = [kc.submit(f'print({i})') for i in range(20)]
        assert [f.result(timeout=60).stdout for f in futures] == [f'{i}\n' for i in range(20)]


def test_stream_is_an_ordinary_iterator():
    with blocking_kernel() as kc:
        types = [m['msg_type'] for m in kc.stream('print("hi")')]
        assert 'stream' in types and 'execute_reply' in types
        assert kc.pending == {}


def test_attach_to_a_running_kernel_from_its_connection_file():
    async def scenario():
        async with run_kernel() as (km, _):
            def use():
                with blocking_kernel(connection_file=km.connection_file) as kc: return own(kc, 7)
            return await asyncio.get_running_loop().run_in_executor(None, use), await km.is_alive()
    assert asyncio.run(scenario()) == ('7', True)  # attaching does not shut the kernel down


def test_works_while_an_event_loop_runs_on_the_calling_thread():
    async def in_a_notebook():
        with blocking_kernel() as kc: return own(kc, 3)
    assert asyncio.run(in_a_notebook()) == '3'


def test_errors_are_raised_in_the_calling_thread():
    with blocking_kernel() as kc:
        with pytest.raises(TimeoutError): kc.execute('import time; time.sleep(1)', reply=True, timeout=0.1)
        def blocked(): kc.execute('import time; time.sleep(30)', reply=True)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(blocked)
            time.sleep(0.3)
            os.kill(kc.parent.provisioner.pid, signal.SIGKILL)
            with pytest.raises(DeadKernelError): waiting.result(timeout=10)


def test_comms_and_the_debugger_are_refused_with_the_way_to_them():
    kc = BlockingConKernelClient(ConKernelClient(), None)  # refused before the loop is used
    for name in ('comm_open', 'register_target', 'unregister_target', 'comms', 'debugger'):
        with pytest.raises(NotImplementedError, match='use the async client'): getattr(kc, name)
