"Comms: ipywidgets round trips on ipykernel and ipymini, client-opened comms with buffers, bad and flooding kernels, death and stop."
import asyncio, os, signal, time

import pytest

from conkernel import ChannelsStoppedError, CommClosedError, ConKernelClient, DeadKernelError, run_kernel

ECHO = """
def echo(comm, msg):
    comm.send({'echo': msg['content']['data']}, buffers=msg['buffers'])
    comm.on_msg(lambda m: comm.send({'echo': m['content']['data']}, buffers=m['buffers']))
get_ipython().kernel.comm_manager.register_target('echo', echo)
"""


async def widget_round_trip(kc):
    "A slider made in the kernel reaches the client with its state; updates go both ways"
    widgets = {}
    kc.register_target('jupyter.widget', lambda comm, msg: widgets.update({msg['content']['data']['state']['_model_name']: (comm, msg)}))
    # run waits for the cell's idle status, so its comm_open (on iopub, unordered with the reply) has arrived
    assert (await kc.run('from ipywidgets import IntSlider\nw = IntSlider(value=3)')).status == 'ok'
    slider, opened = widgets['IntSliderModel']
    assert opened['content']['data']['state']['value'] == 3 and slider.target_name == 'jupyter.widget'
    slider.send({'method': 'update', 'state': {'value': 7}, 'buffer_paths': []})
    seen = await kc.execute('', user_expressions={'v': 'w.value'}, reply=True)
    assert seen['content']['user_expressions']['v']['data']['text/plain'] == '7'
    await kc.execute('w.value = 9', reply=True)
    async def until_nine():
        async for msg in slider:
            if msg['content']['data'].get('method') == 'update' and msg['content']['data']['state'].get('value') == 9: return True
    assert await asyncio.wait_for(until_nine(), 10)
    return slider


@pytest.mark.parametrize('kernel', ['python3', 'py'])
async def test_widget_and_echo_round_trips(kernel):
    async with run_kernel(kernel) as (km, kc):
        slider = await widget_round_trip(kc)
        await kc.execute('w.close()', reply=True)
        assert (await slider.wait_closed(5))['msg_type'] == 'comm_close' and slider.closed_by == 'kernel'
        with pytest.raises(CommClosedError): slider.send({'method': 'update', 'state': {}})
        assert [m async for m in slider] == []  # a closed comm's iterator ends
        await kc.execute(ECHO, reply=True)
        comm = kc.comm_open('echo', {'hello': 1}, buffers=[b'\x00\x01', bytearray(b'xyz')])
        msg = await comm.recv(timeout=5)
        assert msg['content']['data'] == {'echo': {'hello': 1}} and [bytes(b) for b in msg['buffers']] == [b'\x00\x01', b'xyz']
        comm.send({'n': 2})
        assert (await comm.recv(timeout=5))['content']['data'] == {'echo': {'n': 2}}
        comm.close()
        comm.close()  # again: nothing to do
        with pytest.raises(CommClosedError, match='closed by the client'): comm.send({})
        nobody = kc.comm_open('no such target')  # the kernel closes it at once
        assert (await nobody.wait_closed(5))['content']['comm_id'] == nobody.comm_id
        with pytest.raises(TypeError): kc.comm_open('echo', data=[1, 2])
        with pytest.raises(TypeError): kc.comm_open('echo', buffers=[object()])
        assert len(kc.pending) == 0


async def test_bad_and_flooding_kernel_then_stop_channels():
    async with run_kernel() as (km, kc):
        kc.register_target('t', lambda comm, msg: None)
        sent = []
        kc.register_target('flood', lambda comm, msg: sent.append(comm))
        # a kernel that sends comm messages without comm_id, with data that is not a dict, for unknown comms,
        # and opens a comm to a target the client does not have
        r = await kc.run("""
k = get_ipython().kernel
pub = lambda t, c: k.session.send(k.iopub_socket, t, c, parent=k.get_parent())
pub('comm_msg', {'data': {}})
pub('comm_msg', {'comm_id': 'nope', 'data': {}})
pub('comm_msg', {'comm_id': 5, 'data': {}})
pub('comm_close', {'comm_id': 'nope', 'data': {}})
from comm import create_comm
lost = create_comm(target_name='not on the client')
c = create_comm(target_name='flood')
pub('comm_msg', {'comm_id': c.comm_id, 'data': [1, 2]})
for i in range(3000): c.send({'i': i})
""")  # until idle: the opens have come (they are unordered with the reply)
        assert r.status == 'ok', r.reply['content']
        flood, = sent  # iopub is ordered: every message sent before the idle has been routed
        stats = dict(kc.stats)
        assert (stats['comm_malformed'], stats['comm_unknown'], stats['comm_unknown_target']) == (3, 2, 1), stats
        # bounded: the newest 1000 are kept. (A kernel's iopub drops messages for a subscriber that falls behind
        # its high-water mark, which a loaded machine can cause: so some of the 3000 may never arrive.)
        assert len(flood.inbox) == 1000 and 1000 < flood.dropped + len(flood.inbox) <= 3000, (len(flood.inbox), flood.dropped)
        assert (await flood.recv(timeout=1))['content']['data']['i'] >= flood.dropped
        closed = await kc.execute('', user_expressions={'c': 'lost._closed'}, reply=True)  # the client closed it
        assert closed['content']['user_expressions']['c']['data']['text/plain'] == 'True'
        # stopping the channels ends a waiting iterator, recv and wait_closed at once
        flood.inbox.clear()
        async def read(): return [m async for m in flood]
        waiters = [asyncio.create_task(read()), asyncio.create_task(flood.recv()), asyncio.create_task(flood.wait_closed())]
        await asyncio.sleep(0.05)
        start = time.monotonic()
        kc.stop_channels()
        done, _ = await asyncio.wait(waiters, timeout=2)
        assert len(done) == 3 and time.monotonic() - start < 1
        assert all(isinstance(t.exception(), ChannelsStoppedError) for t in waiters)
        with pytest.raises(CommClosedError): flood.send({})
        assert kc.comms.comms == {} and len(kc.pending) == 0


async def test_kill_ends_every_comm_waiter():
    async with run_kernel() as (km, kc):
        await kc.execute(ECHO, reply=True)
        comm = kc.comm_open('echo')
        await comm.recv(timeout=5)
        async def read(): return [m async for m in comm]
        waiters = [asyncio.create_task(read()), asyncio.create_task(comm.recv()), asyncio.create_task(comm.wait_closed())]
        await asyncio.sleep(0.05)
        start = time.monotonic()
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        done, _ = await asyncio.wait(waiters, timeout=5)
        assert len(done) == 3 and time.monotonic() - start < 3
        assert all(isinstance(t.exception(), DeadKernelError) for t in waiters)
        assert isinstance(comm.closed_by, DeadKernelError)
        with pytest.raises(CommClosedError): comm.send({})
        with pytest.raises(DeadKernelError): kc.comm_open('echo')
        assert len(kc.pending) == 0


async def test_async_handlers_are_refused():
    kc = ConKernelClient()
    kc._send = lambda channel, msg: None
    async def later(*args): pass
    class Later:
        async def __call__(self, *args): pass
    for callback in (later, Later()):
        with pytest.raises(TypeError, match='give a plain function; it may start a task'): kc.register_target('t', callback)
    comm = kc.comm_open('t')
    for set_handler in (comm.on_msg, comm.on_close):
        with pytest.raises(TypeError, match='give a plain function'): set_handler(later)
        set_handler(lambda msg: None)
        set_handler(None)
    assert kc.comms.targets == {} and not kc.comms.front_end


async def read_in_kernel(kc, expr):
    return (await kc.execute('', user_expressions={'e': expr}, reply=True, timeout=10))['content']['user_expressions']['e']['data']['text/plain']


async def test_a_bad_close_changes_nothing_and_a_client_without_targets_leaves_kernel_comms_alone():
    async with run_kernel() as (km, kc):
        await kc.execute(ECHO, reply=True)
        comm = kc.comm_open('echo')
        await comm.recv(timeout=5)
        in_kernel = f"{comm.comm_id!r} in get_ipython().kernel.comm_manager.comms"
        for bad in (dict(data=['not', 'a', 'dict']), dict(metadata=[1]), dict(buffers=[object()])):
            with pytest.raises(TypeError): comm.close(**bad)
            with pytest.raises(TypeError): comm.send(**bad)
        assert not comm.is_closed and await read_in_kernel(kc, in_kernel) == 'True'
        comm.close()
        assert comm.closed_by == 'client' and await read_in_kernel(kc, in_kernel) == 'False'
        # a second client that only opens comms of its own does not close the widgets the first one shows
        kc2 = await km.client().start_channels()
        try:
            kc2.comm_open('echo')
            shown = []
            kc.register_target('jupyter.widget', lambda c, m: shown.append(c))
            await kc.run('from ipywidgets import IntSlider\nw = IntSlider()')  # until idle: kc has its opens
            for _ in range(50):  # until its iopub has seen the slider's opens (layout, style, slider)
                if kc2.stats['comm_open_ignored'] >= 3: break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)  # a close it sent would have reached the kernel by now
            assert kc2.stats['comm_open_ignored'] == 3 and kc2.stats['comm_unknown_target'] == 0
            assert await read_in_kernel(kc, 'w.comm is not None and not w.comm._closed') == 'True'
            model_id = eval(await read_in_kernel(kc, 'w.model_id'))
            assert any(c.comm_id == model_id and not c.is_closed for c in shown)
        finally: kc2.stop_channels()
