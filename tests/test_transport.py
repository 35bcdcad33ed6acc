"The transport seam: every event loop, a third transport in one class, start-up that leaves nothing behind, modules that import alone."
import asyncio, os, re, signal, subprocess, sys, threading, time
from pathlib import Path

import pytest
from jupyter_client.session import Session

from conkernel import ConKernelClient, ConKernelManager, DeadKernelError, KernelStartError, run_kernel
from conkernel.router import CHANNELS
from conkernel.transport import Transport

PACKAGE = Path(__file__).resolve().parent.parent/'conkernel'
MODULES = sorted(p.stem for p in PACKAGE.glob('*.py') if not p.stem.startswith('_'))


class NoReaderLoop(asyncio.SelectorEventLoop):
    "A loop without `add_reader`, as Windows' default ProactorEventLoop"
    def add_reader(self, *args): raise NotImplementedError


def run_on(loop, coro_fn):
    "Run `coro_fn()` to the end on `loop`, then close the loop"
    try: return loop.run_until_complete(asyncio.wait_for(coro_fn(), 90))
    finally: loop.close()


def own_value(reply): return reply['content']['user_expressions']['v']['data']['text/plain']


def selector_threads(): return [t for t in threading.enumerate() if t.name == 'conkernel-selector']


async def hundred_routed_then_input_and_death():
    "100 concurrent executes, each reply its own; an input prompt; then kill -9 fails a waiter promptly"
    async with run_kernel() as (km, kc):
        replies = await asyncio.gather(*[kc.execute(f'v = {i}', user_expressions={'v': 'v'}, reply=True) for i in range(100)])
        assert [own_value(r) for r in replies] == [str(i) for i in range(100)]
        res = await kc.run('print(input("name? "))', allow_stdin=True, on_stdin=lambda m: kc.input('Ada'))
        assert res.stdout == 'Ada\n'
        waiter = kc.execute('import time; time.sleep(30)', reply=True)
        await asyncio.sleep(0.3)
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(DeadKernelError, match='process died'): await asyncio.wait_for(waiter, 10)
        assert len(kc.pending) == 0
        return time.monotonic() - start


def test_a_loop_without_add_reader():
    took = run_on(NoReaderLoop(), hundred_routed_then_input_and_death)
    assert took < 5  # the process watch reached the loop through the selector thread, not a timeout
    assert selector_threads() == []  # every selector thread was stopped with its owner


def test_uvloop():
    uvloop = pytest.importorskip('uvloop')
    run_on(uvloop.new_event_loop(), hundred_routed_then_input_and_death)


# A third transport is one class: here an in-process fake kernel that answers every request itself

class EchoTransport(Transport):
    "Answers kernel_info and execute requests in-process, as a kernel would, with busy/idle on iopub"
    def start(self):
        self.kernel, self.alive = Session(key=self.settings.session.key), True
    def send(self, channel, msg):
        if not self.alive: raise RuntimeError('closed')
        asyncio.get_running_loop().call_soon(self.answer, channel, msg)
    def answer(self, channel, req):
        reply = lambda ch, t, c: self.connection.deliver(ch, self.kernel.msg(t, c, parent=req['header']))
        reply('iopub', 'status', {'execution_state': 'busy'})
        content = {'code': req['content'].get('code'), 'protocol_version': '5.4'}
        reply(channel, req['msg_type'].replace('_request', '_reply'), {'status': 'ok', **content})
        reply('iopub', 'status', {'execution_state': 'idle'})
    def is_alive(self): return self.alive
    def close(self): self.alive = False


async def test_a_third_transport_needs_no_change_to_the_client():
    kc = ConKernelClient(transport_class=EchoTransport, session=Session(key=b'k'))
    await kc.start_channels(timeout=5)
    try:
        replies = await asyncio.gather(*[kc.execute(f'{i}', reply=True) for i in range(100)])
        assert [r['content']['code'] for r in replies] == [str(i) for i in range(100)]
        assert (await kc.run('x')).status == 'ok'
        assert len(kc.pending) == 0
    finally: await kc.astop_channels()
    assert not kc.channels_running


# Start-up leaves no kernel behind

def kernel_children() -> set:
    "PIDs of this process's live (not zombie) child processes"
    pids = set()
    for task in Path('/proc/self/task').iterdir():
        pids |= {int(p) for p in (task/'children').read_text().split()}
    def live(pid):
        try: return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
        except OSError: return False
    return {p for p in pids if live(p)}


async def wait_gone(before, timeout=10):
    deadline = time.monotonic() + timeout
    while kernel_children() - before and time.monotonic() < deadline: await asyncio.sleep(0.05)
    return kernel_children() - before


class FailsAfterLaunch(ConKernelManager):
    async def _async_post_start_kernel(self, **kw):
        await super()._async_post_start_kernel(**kw)
        raise OSError('the kernel could not be watched')


async def test_a_start_that_fails_after_launch_shuts_the_kernel_down():
    before = kernel_children()
    km = FailsAfterLaunch()
    with pytest.raises(KernelStartError, match='could not be watched') as e:
        await km.start_kernel()
    assert isinstance(e.value.__cause__, OSError) and 'kernelspec' in str(e.value)
    assert not km.has_kernel and await wait_gone(before) == set()


async def test_an_unknown_kernelspec_is_a_clear_start_error():
    from jupyter_client.kernelspec import NoSuchKernel  # as with jupyter_client: Jupyter Server and others catch it
    with pytest.raises(NoSuchKernel, match='no-such-kernel'):
        async with run_kernel('no-such-kernel'): pass


@pytest.mark.parametrize('delay', [0, 0.005, 0.02, 0.05, 0.2])
async def test_cancelling_run_kernel_during_start_leaves_no_kernel(delay):
    before = kernel_children()
    async def body():
        async with run_kernel() as (km, kc): await asyncio.sleep(30)
    task = asyncio.ensure_future(body())
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError): await task
    assert await wait_gone(before) == set()


@pytest.mark.parametrize('module', MODULES)
def test_each_module_imports_on_its_own(module):
    out = subprocess.run([sys.executable, '-c', f'import conkernel.{module}'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_no_import_cycle():
    "Module-level imports between conkernel's modules form no cycle (lazy imports inside functions are not counted)"
    deps = {m: set(re.findall(r'^from \.(\w+) import', (PACKAGE/f'{m}.py').read_text(), re.M)) for m in MODULES}
    done = set()
    while len(done) < len(deps):
        ready = {m for m in deps if m not in done and deps[m] <= done}
        assert ready, f"import cycle among {sorted(set(deps) - done)}"
        done |= ready
