"Every AsyncKernelClient request under concurrency: mixed bursts, collecting replies later, execute_interactive, stdin, control, kernels started elsewhere, other kernels."
import asyncio, contextvars, glob, os, random, signal, socket, subprocess, sys

import pytest
from jupyter_client.connect import write_connection_file
from jupyter_client.session import DELIM, Session

from conkernel import ChannelsStoppedError, ConKernelClient, KernelUnresponsiveError, SubshellError, run_kernel
from conkernel.router import Router
from conkernel.wire import WireReader

KERNELS = ['python3', 'py']  # ipykernel, ipymini
KINDS = ['complete', 'inspect', 'kernel_info', 'is_complete', 'history', 'comm_info', 'execute']


def parent_id(msg): return msg['parent_header']['msg_id']
def own_value(reply): return reply['content']['user_expressions']['v']['data']['text/plain']


async def prepare_burst(kc, n):
    "Names, comms and history that let each request of the burst be told apart by its content"
    code = '\n'.join(f'beta_{i}_x = "val{i}"' for i in range(n))
    code += f'\nfrom comm import create_comm\ncomms = [create_comm(target_name=f"t{{i}}") for i in range(1, {n}, 2)]'
    assert (await kc.execute(code, reply=True))['content']['status'] == 'ok'
    await asyncio.gather(*[kc.execute(f'h = {i}', reply=True) for i in range(n)])  # at least n history entries


def send(kc, kind, i):
    if kind == 'complete': return kc.complete(f'beta_{i}_', reply=True)
    if kind == 'inspect': return kc.inspect(f'beta_{i}_x', reply=True)
    if kind == 'kernel_info': return kc.kernel_info(reply=True)
    if kind == 'is_complete': return kc.is_complete(f'for j in range({i}):' if i % 2 else f'x = {i}', reply=True)
    if kind == 'history': return kc.history(hist_access_type='tail', n=i + 1, reply=True)
    if kind == 'comm_info': return kc.comm_info(f't{i}', reply=True)
    return kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True)


def check(kc, kind, i, reply):
    "Fail unless `reply` answers request `i` of `kind`, judged by its content"
    c = reply['content']
    assert reply['msg_type'] == f'{kind}_reply'
    assert c['status'] == ('ok' if kind != 'is_complete' else 'incomplete' if i % 2 else 'complete')
    if kind == 'complete': assert c['matches'] == [f'beta_{i}_x']
    elif kind == 'inspect': assert f'val{i}' in c['data']['text/plain']
    elif kind == 'kernel_info': assert c['implementation'] == kc.kernel_info_reply['content']['implementation']
    elif kind == 'history': assert len(c['history']) == i + 1
    elif kind == 'comm_info': assert [v['target_name'] for v in c['comms'].values()] == ([f't{i}'] if i % 2 else [])
    elif kind == 'execute': assert own_value(reply) == str(i)


@pytest.mark.parametrize('kernel', KERNELS)
async def test_burst_of_280_mixed_requests_each_get_their_own_reply(kernel):
    async with run_kernel(kernel) as (km, kc):
        await prepare_burst(kc, 40)
        calls = [(kind, i) for kind in KINDS for i in range(40)]
        random.shuffle(calls)
        waiters = [send(kc, kind, i) for kind, i in calls]
        assert len(kc.pending) == 280
        replies = await asyncio.gather(*waiters)
        for (kind, i), w, r in zip(calls, waiters, replies):
            assert parent_id(r) == w.msg_id
            check(kc, kind, i, r)
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS)
async def test_is_complete_answers_by_content(kernel):
    async with run_kernel(kernel) as (km, kc):
        codes = {f'for j in range({i}):' if i % 2 else f'x = {i}': 'incomplete' if i % 2 else 'complete' for i in range(20)}
        replies = await asyncio.gather(*[kc.is_complete(code, reply=True) for code in codes])
        assert [r['content']['status'] for r in replies] == list(codes.values())


@pytest.mark.parametrize('kernel', KERNELS)
async def test_issue_429_complete_while_execute_interactive_runs(kernel):
    "Two interactive executions and completions in flight together: each hook sees only its own messages"
    async with run_kernel(kernel) as (km, kc):
        await kc.execute('gamma_value = 1', reply=True)
        seen = {'a': [], 'b': []}
        runs = [asyncio.ensure_future(kc.execute_interactive(
                    f'import time\nfor k in range(3): print("{name}", k); time.sleep(0.05)', output_hook=seen[name].append,
                    timeout=30)) for name in seen]
        await asyncio.sleep(0.05)
        completions = await asyncio.gather(*[kc.complete('gamma_v', reply=True, timeout=30) for _ in range(5)])
        assert all(c['content']['matches'] == ['gamma_value'] for c in completions)
        replies = await asyncio.gather(*runs)
        for (name, msgs), r in zip(seen.items(), replies):
            assert r['msg_type'] == 'execute_reply' and r['content']['status'] == 'ok'
            assert {parent_id(m) for m in msgs} == {parent_id(r)}
            text = ''.join(m['content']['text'] for m in msgs if m['msg_type'] == 'stream')
            assert text == ''.join(f'{name} {k}\n' for k in range(3))
            assert msgs[-1]['msg_type'] == 'status' and msgs[-1]['content']['execution_state'] == 'idle'
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS)
async def test_recv_reply_collects_early_and_late_replies_without_disturbing_others(kernel):
    async with run_kernel(kernel) as (km, kc):
        early = [kc.execute(f'v = {i}', user_expressions={'v': 'v'}) for i in range(10)]
        while len(kc.router.queues['shell']) < 10: await asyncio.sleep(0.01)  # all ten replies arrived unclaimed
        late = [kc.execute(f'v = {i}', user_expressions={'v': 'v'}) for i in range(10, 20)]
        order = list(range(1, 20, 2))
        random.shuffle(order)
        ids = early + late
        replies = await asyncio.gather(*[kc._async_recv_reply(ids[i], timeout=30) for i in order])
        assert [own_value(r) for r in replies] == [str(i) for i in order]
        rest = [await kc.get_shell_msg(timeout=30) for _ in range(10)]
        assert sorted(map(parent_id, rest), key=ids.index) == ids[0::2]  # everyone else's, untouched
        assert [parent_id(m) for m in rest[:5]] == early[0::2]  # the early ones still in arrival order
        reply = await kc._recv_reply(kc.control_request('kernel_info_request', reply=False), timeout=30, channel='control')
        assert reply['msg_type'] == 'kernel_info_reply'
        assert len(kc.pending) == 0


async def test_recv_reply_refuses_a_request_already_awaited():
    async with run_kernel('py') as (km, kc):
        waiter = kc.kernel_info(reply=True)
        with pytest.raises(ValueError): await kc._async_recv_reply(waiter.msg_id)
        assert (await waiter)['msg_type'] == 'kernel_info_reply'


@pytest.mark.parametrize('kernel', KERNELS)
async def test_control_requests_answer_while_the_shell_is_busy(kernel):
    async with run_kernel(kernel) as (km, kc):
        sleeper = kc.execute('import time; time.sleep(30)', reply=True, timeout=60)
        await asyncio.sleep(0.3)
        info = await kc.control_request('kernel_info_request', timeout=10)
        assert info['msg_type'] == 'kernel_info_reply' and not sleeper.future.done()
        assert (await kc.control_request('interrupt_request', timeout=10))['msg_type'] == 'interrupt_reply'
        assert (await sleeper)['content']['ename'] == 'KeyboardInterrupt'
        assert (await kc.shell_request('kernel_info_request', timeout=10))['msg_type'] == 'kernel_info_reply'
        mid = kc.shell_request('kernel_info_request', reply=False)
        assert parent_id(await kc.get_shell_msg(timeout=10)) == mid


async def test_debug_request_on_control():
    async with run_kernel() as (km, kc):
        r = await kc.control_request('debug_request', type='request', seq=1, command='initialize', timeout=30,
                                     arguments=dict(clientID='conkernel', adapterID='', pathFormat='path'))
        assert r['msg_type'] == 'debug_reply' and r['content']['success']


async def test_an_unanswered_request_times_out():
    async with run_kernel() as (km, kc):
        with pytest.raises(TimeoutError): await kc.shell_request('no_such_request', timeout=0.3)
        assert len(kc.pending) == 0


def stopped(pid):
    "Are all of process `pid`'s threads stopped?"
    tasks = glob.glob(f'/proc/{pid}/task/*/stat')
    return all(open(t).read().rsplit(')', 1)[1].split()[0] in 'Tt' for t in tasks)


async def test_a_silent_kernel_gives_timeouts_not_hangs():
    async with run_kernel('py') as (km, kc):
        pid = km.provisioner.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            while not stopped(pid): await asyncio.sleep(0.01)
            results = await asyncio.gather(
                kc.complete('x', reply=True, timeout=0.3), kc.inspect('x', reply=True, timeout=0.3),
                kc.history(reply=True, timeout=0.3), kc.is_complete('x', reply=True, timeout=0.3),
                kc.comm_info(reply=True, timeout=0.3), kc.kernel_info(reply=True, timeout=0.3),
                kc.control_request('kernel_info_request', timeout=0.3),
                kc.execute_interactive('1', timeout=0.3, output_hook=print),
                kc._async_recv_reply(kc.complete('x'), timeout=0.3), return_exceptions=True)
            assert [r for r in results if type(r) is not TimeoutError] == []
            assert len(kc.pending) == 0
        finally: os.kill(pid, signal.SIGCONT)
        assert (await kc.kernel_info(reply=True, timeout=30))['msg_type'] == 'kernel_info_reply'


@pytest.mark.parametrize('kernel', KERNELS)
async def test_input_requests_each_get_their_own_answer(kernel):
    """Concurrent executions asking for input, with sync and async hooks; on ipymini two of them on subshells, so
    that their input requests are pending at the same time (ipykernel 7.4's subshell threads share one stdin socket
    unsynchronised and lose answers, so there all run on the main shell)"""
    nsub = 2 if kernel == 'py' else 0
    async with run_kernel(kernel) as (km, kc):
        async def later(msg, name):
            await asyncio.sleep(0.1)
            kc.input(f'{name}!')  # jupyter_client style: the hook answers through kc.input
        def hook(name): return (lambda msg: f'{name}!') if name.endswith('0') else (lambda msg: later(msg, name))
        subs = [(await kc.control_request('create_subshell_request'))['content']['subshell_id'] for _ in range(nsub)]
        names = [f'n{i}' for i in range(6)]
        runs = [kc.execute_interactive(f'{name} = input("{name}? ")', allow_stdin=True, stdin_hook=hook(name),
                                       output_hook=lambda m: None, timeout=30,
                                       subshell_id=subs[i] if i < nsub else None) for i, name in enumerate(names)]
        replies = await asyncio.gather(*runs)
        assert all(r['content']['status'] == 'ok' for r in replies)
        r = await kc.execute('', user_expressions={n: n for n in names}, reply=True)
        assert {n: v['data']['text/plain'] for n, v in r['content']['user_expressions'].items()} == {n: f"'{n}!'" for n in names}
        assert len(kc.router.inputs) == 0 and len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS)
async def test_input_reply_carries_the_input_request_as_parent(kernel):
    "jupyter_client style: read the input_request from the stdin channel, answer with kc.input(value)"
    async with run_kernel(kernel) as (km, kc):
        sent, send = [], kc.stdin_channel.send
        kc.stdin_channel.send = lambda msg: (sent.append(msg), send(msg))
        waiter = kc.execute('w = input("w? ")', allow_stdin=True, reply=True, timeout=30)
        request = await kc.get_stdin_msg(timeout=30)
        assert request['msg_type'] == 'input_request' and parent_id(request) == waiter.msg_id
        kc.input('typed')
        assert (await waiter)['content']['status'] == 'ok'
        assert sent[0]['parent_header']['msg_id'] == request['header']['msg_id']
        reply = await kc.execute('', user_expressions={'v': 'w'}, reply=True)
        assert own_value(reply) == "'typed'"
        got = []
        reply = await kc.execute('v = input("v? ")', allow_stdin=True, reply=True, timeout=30, user_expressions={'v': 'v'},
                                 on_stdin=lambda msg: (got.append(msg), kc.input('handled')))
        assert own_value(reply) == "'handled'" and got[0]['content']['prompt'] == 'v? '
        with pytest.raises(ValueError): kc.execute('1', on_stdin=print)  # a handler needs reply=True


where = contextvars.ContextVar('where', default='the reader')

async def test_hooks_run_in_the_callers_context():
    "Inside a kernel the context decides where printed output goes, so hooks must not run in the reader's"
    async with run_kernel('py') as (km, kc):
        async def caller():
            where.set('the caller')
            seen = []
            hook = lambda msg: seen.append(where.get())
            await kc.execute_interactive('input()', allow_stdin=True, output_hook=hook,
                                         stdin_hook=lambda msg: hook(msg) or 'x', timeout=30)
            return seen
        seen = await asyncio.ensure_future(caller())
        assert len(seen) >= 4 and set(seen) == {'the caller'}


async def test_a_failing_stdin_hook_answers_end_of_file():
    async with run_kernel() as (km, kc):
        def broken(msg): raise RuntimeError('no keyboard')
        r = await kc.execute_interactive('input()', allow_stdin=True, stdin_hook=broken, timeout=30, output_hook=lambda m: None)
        assert r['content']['status'] == 'error' and r['content']['ename'] == 'EOFError'


async def until(cond, limit=30):
    "Wait until `cond()` holds, at most `limit` seconds"
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not cond():
        assert loop.time() < end, 'gave up waiting'
        await asyncio.sleep(0.02)


@pytest.mark.parametrize('kernel', KERNELS + ['xpython'])
async def test_a_prompt_that_comes_after_its_caller_gave_up_is_ended(kernel):
    """A request that timed out, was cancelled or was dropped before the kernel reached its input() asks later; that
    prompt is ended, so the kernel answers the next request (it used to wait in input() for good)"""
    async with run_kernel(kernel) as (km, kc):
        def ask(**kw): return kc.execute('import time; time.sleep(0.5); late = input("late? ")', allow_stdin=True,
                                         stop_on_error=False, reply=True, **kw)
        with pytest.raises(TimeoutError): await ask(timeout=0.1)
        assert (await kc.execute('1', reply=True, timeout=20))['content']['status'] == 'ok'
        task = asyncio.ensure_future(ask())
        await asyncio.sleep(0.1)
        task.cancel()
        assert (await kc.execute('1', reply=True, timeout=20))['content']['status'] == 'ok'
        ask()  # dropped unawaited
        assert (await kc.execute('1', reply=True, timeout=20))['content']['status'] == 'ok'
        assert kc.stats['inputs_ended'] == 3 and kc.stats['late'] == 3
        assert len(kc.router.inputs) == 0 and len(kc.router.queues['stdin']) == 0 and len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS + ['xpython'])
async def test_the_prompt_of_a_request_failed_while_the_kernel_was_stopped_is_ended(kernel):
    "The heartbeat's KernelUnresponsiveError fails the request waiting in input(); once the kernel resumes, it is not left there"
    async with run_kernel(kernel) as (km, kc):
        waiter = kc.execute('x = input("x? ")', allow_stdin=True, stop_on_error=False, reply=True, timeout=60)
        await until(lambda: kc.router.inputs)
        pid = km.provisioner.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(KernelUnresponsiveError): await waiter
        finally: os.kill(pid, signal.SIGCONT)
        await until(lambda: kc.router.closed is None)
        assert (await kc.execute('1', reply=True, timeout=20))['content']['status'] == 'ok'
        assert kc.stats['inputs_ended'] == 1 and len(kc.router.queues['stdin']) == 0


async def test_stopping_the_channels_ends_their_prompts():
    """A client that leaves while its request waits in input() does not leave the kernel there for the next client (on
    ipykernel; ipymini ends an input() itself when its client goes)"""
    async with run_kernel() as (km, kc):
        waiter = kc.execute('x = input("x? ")', allow_stdin=True, stop_on_error=False, reply=True, timeout=60)
        await until(lambda: kc.router.inputs)
        await kc.astop_channels()
        with pytest.raises(ChannelsStoppedError): await waiter
        other = await km.client().start_channels()
        try: assert (await other.execute('1', reply=True, timeout=20))['content']['status'] == 'ok'
        finally: await other.astop_channels()


@pytest.mark.parametrize('kernel', KERNELS)
async def test_deleting_a_subshell_that_waits_for_input(kernel):
    "Its request fails and its prompt is ended as the deletion is sent: ipykernel lets the subshell go only once the request ends"
    async with run_kernel(kernel) as (km, kc):
        sid = await kc.create_subshell()
        waiter = kc.execute('x = input("x? ")', allow_stdin=True, reply=True, subshell_id=sid, timeout=60)
        await until(lambda: kc.router.inputs)
        await kc.delete_subshell(sid, timeout=20)
        with pytest.raises(SubshellError): await waiter
        assert await kc.list_subshells() == [] and kc.stats['inputs_ended'] == 1
        assert (await kc.execute('1', reply=True, timeout=20))['content']['status'] == 'ok'


async def test_a_prompt_of_a_request_sent_without_reply_is_left_to_its_reader():
    "jupyter_client style (reply=False, then get_stdin_msg): never answered for it, though other requests were abandoned"
    async with run_kernel() as (km, kc):
        with pytest.raises(TimeoutError): await kc.execute('import time; time.sleep(0.3)', reply=True, timeout=0.05)
        mid = kc.execute('w = input("w? ")', allow_stdin=True)
        request = await kc.get_stdin_msg(timeout=30)
        assert parent_id(request) == mid
        await asyncio.sleep(0.5)  # nobody else answers it meanwhile
        kc.input('typed')
        assert (await kc._async_recv_reply(mid, timeout=30))['content']['status'] == 'ok'
        assert own_value(await kc.execute('', user_expressions={'v': 'w'}, reply=True)) == "'typed'"
        assert kc.stats['inputs_ended'] == 0


async def test_a_prompt_after_its_requests_reply_is_left_to_a_reader():
    "ipymini sends the prompt of a thread that calls input() once its cell has ended: the shell is not blocked, so it is queued"
    async with run_kernel('py') as (km, kc):
        code = 'import threading\ndef ask(): globals()["late"] = input("late? ")\nthreading.Timer(0.3, ask).start()'
        r = await kc.execute(code, allow_stdin=True, reply=True, timeout=30)
        request = await kc.get_stdin_msg(timeout=30)
        assert parent_id(request) == parent_id(r) and kc.stats['inputs_ended'] == 0
        assert (await kc.execute('1', reply=True, timeout=20))['content']['status'] == 'ok'
        kc.input('typed', request)
        for _ in range(100):
            reply = await kc.execute('', user_expressions={'v': 'late'}, reply=True, timeout=20)
            if reply['content']['user_expressions']['v']['status'] == 'ok': break
            await asyncio.sleep(0.05)
        assert own_value(reply) == "'typed'"


def launch_ipykernel(cf):
    "Start an ipykernel in another process, as a user or a server would, on a new connection file"
    write_connection_file(cf, key=os.urandom(16).hex().encode())
    return subprocess.Popen([sys.executable, '-m', 'ipykernel_launcher', '-f', cf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_a_kernel_started_by_another_process(tmp_path):
    "ConKernelClient(connection_file=...) drives a kernel it did not start, then shuts it down"
    cf = str(tmp_path / 'kernel.json')
    proc = launch_ipykernel(cf)
    try:
        kc = ConKernelClient(connection_file=cf)
        kc.load_connection_file()
        await kc.start_channels(timeout=60)
        try:
            assert await kc.is_alive()
            seen = []
            r = await kc.execute_interactive('print("far")', output_hook=seen.append, timeout=30)
            assert r['content']['status'] == 'ok' and ''.join(m['content']['text'] for m in seen if m['msg_type'] == 'stream') == 'far\n'
            kinds = await asyncio.gather(*[send(kc, kind, 0) for kind in KINDS])
            assert [r['msg_type'] for r in kinds] == [f'{k}_reply' for k in KINDS]
            assert (await kc.shutdown(reply=True, timeout=30))['content']['status'] == 'ok'
        finally: kc.stop_channels()
        await asyncio.to_thread(proc.wait, 30)  # it exits (its code is the kernel's: ipykernel has aborted on its way out under load)
    finally:
        if proc.poll() is None: proc.kill(); proc.wait()


async def test_ready_means_stdin_is_connected_too(tmp_path):
    "A kernel drops input requests sent before the client's stdin connection completes, so readiness waits for it"
    cf = str(tmp_path / 'kernel.json')
    proc = launch_ipykernel(cf)
    try:
        kc = ConKernelClient(connection_file=cf)
        kc.load_connection_file()
        with socket.socket() as s:  # a port where nothing listens: stdin can never connect
            s.bind(('127.0.0.1', 0))
            kc.stdin_port = s.getsockname()[1]
            with pytest.raises(RuntimeError, match='stdin'): await kc.start_channels(timeout=3)
        kc.stop_channels()
    finally: proc.kill(); proc.wait()


async def test_the_router_ends_the_prompts_of_requests_nobody_waits_for():
    "Late prompts of abandoned or failed requests are ended, within the bounded memory; others are queued; close ends them before refusing sends"
    def prompt(parent): return dict(msg_type='input_request', parent_header={'msg_id': parent}, content={'prompt': '? '})
    r, ended = Router(maxlen=3), []
    r.on_orphaned_input = lambda msg: ended.append((parent_id(msg), r.error is None))
    for i in range(5): r.forget(f'm{i}', r.register(f'm{i}', 'execute_request'))
    r.fail(['never registered'], RuntimeError)
    r.register('failed', 'execute_request')
    r.fail(['failed'], RuntimeError)
    for m in ['m0', 'm2', 'm3', 'm4', 'failed', 'sent with reply=False']: r.dispatch('stdin', prompt(m))
    assert [m for m, _ in ended] == ['m3', 'm4', 'failed']  # m0..m2 were pushed out of the memory (3 long)
    assert [parent_id(m) for m in r.queues['stdin'].items] == ['m0', 'm2', 'sent with reply=False']
    r.register('asking', 'execute_request', on_stdin=lambda msg: None)
    r.dispatch('stdin', prompt('asking'))
    r.close(RuntimeError)
    assert ended[-1] == ('asking', True) and r.stats['inputs_ended'] == 4


def test_unparented_messages_are_routed():
    "xeus-python sends some messages with a null parent_header: read as {}, they go to their channel's queue"
    session, r = Session(key=b'k'), Router()
    parts = [session.pack(session.msg_header('status')), b'null', b'{}', session.pack({'execution_state': 'starting'})]
    msg = WireReader(session).parse([DELIM, session.sign(parts), *parts], 'iopub')
    assert msg['parent_header'] == {}
    r.dispatch('iopub', msg)
    assert len(r.queues['iopub']) == 1


async def test_xeus_python_one_request_at_a_time():
    "xeus-python stalls under pipelining, so each request here waits for the previous one"
    async with run_kernel('xpython') as (km, kc):
        assert kc.kernel_info_reply['content']['implementation'] == 'xeus-python'
        assert (await kc.execute('beta_0_x = "val0"', reply=True, timeout=30))['content']['status'] == 'ok'
        for kind in ['complete', 'inspect', 'kernel_info', 'is_complete', 'execute']:
            check(kc, kind, 0, await send(kc, kind, 0))
        for kind in ['history', 'comm_info']:
            assert (await send(kc, kind, 0))['msg_type'] == f'{kind}_reply'
        seen = []
        r = await kc.execute_interactive('print("x")', output_hook=seen.append, timeout=30)
        assert r['content']['status'] == 'ok' and {parent_id(m) for m in seen} == {parent_id(r)}
        r = await kc.execute_interactive('answer = input("? ")', allow_stdin=True, stdin_hook=lambda m: '42',
                                         output_hook=seen.append, timeout=30, user_expressions={'v': 'answer'})
        assert own_value(r) == "'42'"
        assert (await kc.control_request('kernel_info_request', timeout=30))['msg_type'] == 'kernel_info_reply'
        mid = kc.complete('beta_0_')
        assert (await kc._async_recv_reply(mid, timeout=30))['content']['matches'] == ['beta_0_x']
