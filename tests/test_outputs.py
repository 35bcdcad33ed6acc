"Per-request outputs on real kernels: run() results and stream() under concurrency, floods, late output, clean-up."
import asyncio, gc, os, tempfile, time

import pytest

from conkernel import ChannelsStoppedError, KernelError, run_kernel

KERNELS = ['python3', 'py']  # ipykernel, ipymini


def lines(prefix, n): return ''.join(f'{prefix}{j}\n' for j in range(n))


async def create_subshell(kc):
    return (await kc._request('control', 'create_subshell_request', {}, reply=True))['content']['subshell_id']


@pytest.mark.parametrize('kernel', KERNELS)
async def test_200_concurrent_runs_each_hold_exactly_their_own_lines(kernel):
    async with run_kernel(kernel) as (km, kc):
        # odd requests flush every line, so their 50 lines come as 50 messages interleaved with the others'
        runs = [kc.run(f'for j in range(50): print("m{i}:", j, sep="", flush={i % 2 == 1})') for i in range(200)]
        assert len(kc.pending) == 200
        results = await asyncio.gather(*runs)
        for i, res in enumerate(results):
            assert res.status == 'ok'
            assert res.stdout == lines(f'm{i}:', 50)
            assert res.outputs == [dict(output_type='stream', name='stdout', text=lines(f'm{i}:', 50))]
            assert res.reply['parent_header']['msg_id'] == res.msg_id == runs[i].msg_id
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS)
async def test_runs_streams_and_iopub_readers_each_see_exactly_their_messages(kernel):
    async with run_kernel(kernel) as (km, kc):
        code = 'import sys\nfor j in range(20): print({i}, j, flush=True); print("e{i}", file=sys.stderr, flush=True)\n{i}'
        kc.router.queues['iopub'].maxlen = 10_000  # all 2,600 messages: on a loaded machine the reader may lag behind
        runs = [kc.run(code.format(i=i), keep_msgs=True) for i in range(30)]
        streams = [kc.stream(code.format(i=100 + i)) for i in range(30)]
        ids = {r.msg_id for r in runs} | {s.msg_id for s in streams}
        seen = {}

        async def read_iopub():  # a plain get_iopub_msg reader, beside the runs and streams
            idle = set()
            while idle != ids:
                msg = await kc.get_iopub_msg(timeout=30)
                parent = msg['parent_header'].get('msg_id')
                seen.setdefault(parent, []).append(msg)
                if msg['msg_type'] == 'status' and msg['content']['execution_state'] == 'idle': idle.add(parent)

        async def consume(s): return [m async for m in s]

        reader = asyncio.ensure_future(read_iopub())
        results = await asyncio.gather(*runs)
        streamed = await asyncio.gather(*map(consume, streams))
        await asyncio.wait_for(reader, 30)
        for i, res in enumerate(results):
            assert res.msgs == seen[res.msg_id]
            assert res.stdout == ''.join(f'{i} {j}\n' for j in range(20)) and res.stderr == f'e{i}\n' * 20
            assert res.outputs[-1]['data'] == {'text/plain': str(i)}
        for s, msgs in zip(streams, streamed):
            assert msgs[:-1] == seen[s.msg_id]
            assert msgs[-1]['msg_type'] == 'execute_reply' and msgs[-1]['parent_header']['msg_id'] == s.msg_id
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS)
async def test_stream_yields_the_first_output_while_the_cell_still_runs(kernel):
    async with run_kernel(kernel) as (km, kc):
        with tempfile.TemporaryDirectory() as d:
            go = os.path.join(d, 'go')
            # the cell cannot end before the test has seen its first line: it waits for the test's file
            stream = kc.stream(f'import os, time\nprint("first", flush=True)\ntime.sleep(0.2)\n'
                               f'for _ in range(2000):\n    if os.path.exists({go!r}): break\n    time.sleep(0.01)\n'
                               f'print("second")')
            kinds, texts = [], []
            async for msg in stream:
                kinds.append(msg['msg_type'])
                if msg['msg_type'] == 'stream':
                    texts.append(msg['content']['text'])
                    if ''.join(texts) == 'first\n':  # (a print can arrive in two pieces)
                        assert stream.msg_id in kc.pending  # the cell has not ended
                        open(go, 'w').close()
        assert ''.join(texts) == 'first\nsecond\n'
        assert kinds[0] == 'status' and kinds[-2:] == ['status', 'execute_reply']
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.timeout(300)
async def test_flood_of_lines_arrives_whole_and_ordered_beside_another_request(kernel):
    # ipykernel prints about 4,000 lines/s, and its iopub socket drops messages once 1,000 wait for one subscriber
    # (its default high-water mark: the kernel's or the client's I/O thread falling behind on two busy cores); the
    # kernel's socket is made to keep them, so that what this checks is the client's part alone
    n = 100_000 if kernel == 'py' else 20_000
    async with run_kernel(kernel) as (km, kc):
        if kernel == 'python3':
            await kc.execute("t = get_ipython().kernel.iopub_thread; t.schedule(lambda: setattr(t.socket, 'sndhwm', 0))", reply=True)
        sub = await create_subshell(kc)
        start = time.monotonic()
        flood = kc.run(f'for i in range({n}): print(i, flush=True)')
        beside = kc.run('import time\nfor i in range(200): print("beside", i, flush=True); time.sleep(0.001)',
                        subshell_id=sub)
        flood, beside = await asyncio.gather(flood, beside)
        print(f'{kernel}: {n:,} flushed lines in {time.monotonic() - start:.1f} s')
        assert flood.stdout == lines('', n)
        assert beside.stdout == lines('beside ', 200)
        assert flood.msgs is None and len(flood.outputs) == 1  # one copy: the merged text
        assert len(kc.router.queues['iopub']) <= kc.max_queued
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS)
async def test_output_after_idle_goes_to_no_result_but_reaches_iopub_readers(kernel):
    async with run_kernel(kernel) as (km, kc):
        first = await kc.run('import contextvars, threading, time\nfrom IPython.display import HTML, display\n'
                             'h = display(HTML("v1"), display_id=True)\n'
                             'threading.Timer(0.2, contextvars.copy_context().run, [print, "late"]).start()')
        second = await kc.run('time.sleep(0.5); print("mine")')
        third = await kc.run('h.update(HTML("v2"))', keep_msgs=True)
        assert (first.stdout, second.stdout, third.stdout) == ('', 'mine\n', '')
        assert first.outputs[0]['data']['text/html'] == 'v1'  # updated later, by another request
        assert third.outputs == [] and [m['msg_type'] for m in third.msgs].count('update_display_data') == 1
        late = []
        while not late:
            msg = await kc.get_iopub_msg(timeout=5)
            if msg['msg_type'] == 'stream' and msg['content']['text'] == 'late\n': late.append(msg)
        assert late[0]['parent_header']['msg_id'] == first.msg_id


@pytest.mark.parametrize('kernel', KERNELS)
async def test_errors_aborts_and_raises(kernel):
    async with run_kernel(kernel) as (km, kc):
        failing = kc.run('print("before"); import time; time.sleep(0.1); 1/0')
        aborted = kc.run('print("never")')  # queued behind the failure: the kernel aborts it
        failing, aborted = await asyncio.gather(failing, aborted)
        assert (failing.status, failing.ename, failing.evalue) == ('error', 'ZeroDivisionError', 'division by zero')
        assert [o['output_type'] for o in failing.outputs] == ['stream', 'error'] and failing.traceback
        assert (aborted.status, aborted.outputs, aborted.ename) == ('aborted', [], None)
        with pytest.raises(KernelError) as info: await kc.run('print("partial"); raise ValueError("bad")', raises=True)
        assert (info.value.ename, info.value.evalue, info.value.result.stdout) == ('ValueError', 'bad', 'partial\n')
        assert 'ValueError: bad' in str(info.value) and '\x1b' not in str(info.value)
        assert (await kc.run('1', raises=True)).status == 'ok'
        assert len(kc.pending) == 0


@pytest.mark.parametrize('kernel', KERNELS)
async def test_rich_outputs_display_updates_and_clear_output(kernel):
    async with run_kernel(kernel) as (km, kc):
        res = await kc.run('import base64\nfrom IPython.display import HTML, Image, clear_output, display\n'
                           'print("a")\nclear_output(wait=True)\nprint("b")\n'
                           'h = display(HTML("<b>old</b>"), display_id=True)\nh.update(HTML("<b>new</b>"))\n'
                           'Image(base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="))')
        assert [o['output_type'] for o in res.outputs] == ['stream', 'display_data', 'execute_result']
        assert res.stdout == 'b\n' and res.outputs[1]['data']['text/html'] == '<b>new</b>'
        bundle = res._repr_mimebundle_()
        assert '<b>new</b>' in bundle['text/html'] and 'src="data:image/png;base64,iVBORw0KGgo' in bundle['text/html']
        assert repr(res).startswith("RunResult(status='ok'") and 'Out[' in bundle['text/plain']
        single = await kc.run('HTML("<i>x</i>")')
        assert single._repr_mimebundle_()[0]['text/html'] == '<i>x</i>'  # one output: the kernel's own bundle


@pytest.mark.parametrize('kernel', KERNELS)
async def test_leaving_a_stream_early_withdraws_the_request(kernel):
    async with run_kernel(kernel) as (km, kc):
        async for msg in kc.stream('import time; time.sleep(0.3); print("rest")'):
            if msg['msg_type'] == 'execute_input': break
        assert len(kc.pending) == 0  # at once, with no await in between
        await kc.run('pass')  # the abandoned request's reply has arrived by now: counted as late and dropped
        assert kc.stats['late'] >= 1 and len(kc.router.queues['shell']) == 0
        held = kc.stream('import time; time.sleep(0.3)')
        assert (await held.__anext__())['msg_type'] == 'status'
        await held.aclose()
        assert len(kc.pending) == 0 and [m async for m in held] == []
        task = asyncio.ensure_future(consume_all(kc.stream('import time; time.sleep(0.3)')))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert len(kc.pending) == 0
        assert (await kc.run('print("still fine")')).stdout == 'still fine\n'


async def consume_all(stream): return [m async for m in stream]


async def test_cancelled_dropped_and_timed_out_runs_leave_the_router():
    async with run_kernel('py') as (km, kc):
        task = asyncio.ensure_future(kc.run('import time; time.sleep(0.3)'))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert len(kc.pending) == 0
        kc.run('1+1')  # never awaited
        gc.collect()
        assert len(kc.pending) == 0
        with pytest.raises(TimeoutError): await kc.run('import time; time.sleep(0.5)', timeout=0.1)
        with pytest.raises(TimeoutError): await consume_all(kc.stream('import time; time.sleep(0.5)', timeout=0.1))
        assert len(kc.pending) == 0
        await asyncio.sleep(1)  # let the kernel finish those cells
        assert (await kc.run('print("ok")')).stdout == 'ok\n'


async def test_stopping_the_channels_fails_runs_and_streams_at_once():
    async with run_kernel('py') as (km, kc):
        runs = [kc.run('import time; time.sleep(0.5)') for _ in range(5)]
        streams = [kc.stream('import time; time.sleep(0.5)') for _ in range(5)]
        await kc.astop_channels()
        results = await asyncio.gather(*runs, *map(consume_all, streams), return_exceptions=True)
        assert all(isinstance(r, ChannelsStoppedError) for r in results)
        assert len(kc.pending) == 0


async def test_a_malformed_output_is_left_out_and_said():
    "A stream without text, a result without data: the run is marked incomplete, the other outputs are whole"
    async with run_kernel() as (km, kc):
        code = ("k = get_ipython().kernel\n"
                "k.session.send(k.iopub_socket, 'stream', {'name': 'stdout'}, parent=k.get_parent())\n"
                "k.session.send(k.iopub_socket, 'execute_result', {}, parent=k.get_parent())\n"
                "print('after')")
        r = await kc.run(code, timeout=30)
        assert r.status == 'ok' and r.stdout == 'after\n' and not r.complete
        assert [n.split(' (')[0] for n in r.notes] == ['a malformed stream message was left out',
                                                     'a malformed execute_result message was left out']
        assert (await kc.run('1 + 1')).complete
