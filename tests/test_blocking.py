"""BlockingConKernelClient: many threads at once, submit, attach, inside a running loop, errors in the caller's thread;
jupyter_client's blocking API (channels, hooks, the manager) with nothing async leaking out."""
import asyncio, inspect, os, queue, signal, threading, time
from concurrent.futures import ThreadPoolExecutor

import pytest
from jupyter_client.utils import run_sync

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


# jupyter_client's blocking API, as code written for BlockingKernelClient (jupyter_kernel_test, kernel test suites) uses it

def drain(get_msg):
    "Read messages with `get_msg` until none comes for 0.2 s"
    for _ in range(10_000):
        try: msg = get_msg(timeout=0.2)
        except queue.Empty: return
        assert isinstance(msg, dict), f'get_msg gave {msg!r}'
    raise AssertionError('the channel never emptied')


def test_channels_block_like_jupyter_clients_from_many_threads():
    with blocking_kernel() as kc:
        ch = kc.iopub_channel
        drain(ch.get_msg)
        assert not inspect.iscoroutinefunction(ch.get_msg)
        start = time.monotonic()
        with pytest.raises(queue.Empty): ch.get_msg(timeout=0.1)
        assert time.monotonic() - start < 5
        assert ch.msg_ready() is False and ch.get_msgs() == [] and ch.is_alive() is True
        with ThreadPoolExecutor(8) as pool:
            waiting = [pool.submit(ch.get_msg, timeout=30) for _ in range(8)]  # most wait before the messages exist
            ids = {kc.execute(f'print({i})') for i in range(2)}  # 4 iopub messages each: busy, execute_input, stream, idle
            msgs = [f.result(timeout=20) for f in waiting]
        assert all(isinstance(m, dict) for m in msgs)
        assert len({m['msg_id'] for m in msgs}) == 8 and {m['parent_header']['msg_id'] for m in msgs} == ids
        with ThreadPoolExecutor(1) as pool:
            forever = pool.submit(ch.get_msg)  # timeout=None waits as long as it takes
            msg_id = kc.execute('1')
            assert forever.result(timeout=20)['parent_header']['msg_id'] == msg_id
        replies = [kc.shell_channel.get_msg(timeout=10) for _ in range(3)]
        assert {r['parent_header']['msg_id'] for r in replies} == ids | {msg_id}
        drain(ch.get_msg)
        request = kc.session.msg('kernel_info_request', {})
        kc.control_channel.send(request)  # sent from the loop thread, the only one touching the sockets
        assert kc.control_channel.get_msg(timeout=10)['parent_header']['msg_id'] == request['msg_id']
        assert kc.hb_channel.is_beating() is True and kc.stdin_channel.msg_ready() is False


def sync_call(fn):
    "How jupyter_kernel_test calls a channel's `get_msg`: directly, or through `run_sync` when it is a coroutine function"
    return run_sync(fn) if inspect.iscoroutinefunction(fn) else fn


def flush_channels(kc):
    "jupyter_kernel_test's flush_channels: read shell and iopub until each stays empty for 0.1 s"
    for channel in (kc.shell_channel, kc.iopub_channel):
        for _ in range(10_000):
            try: sync_call(channel.get_msg)(timeout=0.1)
            except queue.Empty: break


def kernel_test_execute(kc, code, output_timeout=5):
    "jupyter_kernel_test's execute_helper (a 5 s output timeout, not 0.1, for busy machines): execute, reply, iopub to idle"
    msg_id = kc.execute(code=code)
    reply = kc.get_shell_msg(timeout=15)
    assert reply['msg_type'] == 'execute_reply' and reply['parent_header']['msg_id'] == msg_id
    busy = sync_call(kc.iopub_channel.get_msg)(timeout=1)
    assert busy['msg_type'] == 'status' and busy['content']['execution_state'] == 'busy'
    outputs = []
    while True:
        msg = sync_call(kc.iopub_channel.get_msg)(timeout=output_timeout)
        assert msg['parent_header']['msg_id'] == msg_id
        if msg['msg_type'] == 'status':
            assert msg['content']['execution_state'] == 'idle'
            return reply, outputs
        if msg['msg_type'] != 'execute_input': outputs.append(msg)


def test_code_written_for_jupyter_clients_blocking_client_runs_as_jupyter_kernel_test_drives_it():
    with blocking_kernel() as kc:
        flush_channels(kc)
        reply, outputs = kernel_test_execute(kc, "print('hello, world')")
        assert reply['content']['status'] == 'ok' and outputs[0]['content'] == {'name': 'stdout', 'text': 'hello, world\n'}
        reply, outputs = kernel_test_execute(kc, "import sys; print('oops', file=sys.stderr)")
        assert outputs[0]['content']['name'] == 'stderr'
        reply, outputs = kernel_test_execute(kc, 'raise ValueError(3)')
        assert reply['content']['status'] == 'error' and [m['msg_type'] for m in outputs] == ['error']
        reply, outputs = kernel_test_execute(kc, '1+2+3')
        assert outputs[0]['content']['data']['text/plain'] == '6'
        start = time.monotonic()  # the idle comes 0.5 s after the reply is asked for: it is seen when it comes, not at the timeout
        reply, outputs = kernel_test_execute(kc, "import time; time.sleep(0.5); print('late')", output_timeout=15)
        assert outputs[0]['content']['text'] == 'late\n' and time.monotonic() - start < 10
        msg_id = kc.kernel_info()
        assert kc.get_shell_msg(timeout=15)['parent_header']['msg_id'] == msg_id
        flush_channels(kc)


def test_execute_interactive_calls_its_hooks_in_the_calling_thread():
    with blocking_kernel() as kc:
        def interactive(i):
            seen, threads = [], set()
            def output(msg): threads.add(threading.get_ident()); seen.append(msg)
            def answer(msg): threads.add(threading.get_ident()); kc.input(f'answer {i}')  # jupyter_client's way: the hook sends it
            reply = kc.execute_interactive(f'print(input("q{i}? "))', allow_stdin=True, output_hook=output, stdin_hook=answer,
                                           timeout=60)
            text = ''.join(m['content']['text'] for m in seen if m['msg_type'] == 'stream')
            return reply['content']['status'], text, threads == {threading.get_ident()}
        with ThreadPoolExecutor(4) as pool: results = list(pool.map(interactive, range(4)))
        assert results == [('ok', f'answer {i}\n', True) for i in range(4)]
        reply = kc.execute_interactive('print(input())', allow_stdin=True, output_hook=lambda m: None,
                                       stdin_hook=lambda m: 'returned', timeout=60)  # returning the answer works too
        assert reply['content']['status'] == 'ok'
        def broken(msg): raise ValueError('hook failed')
        with pytest.raises(ValueError, match='hook failed'): kc.execute_interactive('1', output_hook=broken, timeout=60)
        assert kc.pending == {} and own(kc, 5) == '5'


def test_the_manager_subshells_and_restarted_channels_are_blocking_too():
    with blocking_kernel() as kc:
        assert kc.parent.is_alive() is True
        with kc.subshell() as sh:
            assert isinstance(sh, BlockingConKernelClient)
            r = sh.execute('import threading; t = threading.current_thread().name', user_expressions={'t': 't'}, reply=True)
            assert r['content']['user_expressions']['t']['data']['text/plain'] != "'MainThread'"
        assert kc.list_subshells() == []
        kc.stop_channels()
        assert kc.channels_running is False
        assert isinstance(kc.start_channels(), BlockingConKernelClient) and kc.channels_running
        assert isinstance(kc.reconnect(), BlockingConKernelClient) and own(kc, 4) == '4'
        assert isinstance(kc.stats, dict) and isinstance(kc.pending, dict)
        assert {'execute', 'get_shell_msg', 'iopub_channel', 'submit'} <= set(dir(kc))  # what completion offers


class Interrupted(Exception): pass


def test_a_wait_the_caller_gives_up_takes_no_message():
    if threading.current_thread() is not threading.main_thread(): pytest.skip('signals reach only the main thread')
    def interrupt(*_): raise Interrupted
    old = signal.signal(signal.SIGUSR1, interrupt)
    timer = threading.Timer(0.5, signal.pthread_kill, (threading.get_ident(), signal.SIGUSR1))
    try:
        with blocking_kernel() as kc:
            drain(kc.get_iopub_msg)
            timer.start()
            with pytest.raises(Interrupted): kc.get_iopub_msg(timeout=30)  # as a KeyboardInterrupt would
            msg_id = kc.execute('1')
            first = kc.get_iopub_msg(timeout=10)  # not taken by the abandoned wait
            assert first['parent_header']['msg_id'] == msg_id and first['content'] == {'execution_state': 'busy'}
    finally:
        timer.cancel()
        if timer.ident is not None: timer.join()
        signal.signal(signal.SIGUSR1, old)
