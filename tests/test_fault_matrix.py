"""The fault matrix: kernel and connection faults x request kinds x transports. For each cell: every waiter ends,
within a stated bound, with its own reply or the fault's documented exception; nothing is delivered twice;
`kc.pending` is empty; no kernel process, selector thread or file descriptor is left behind."""
import asyncio, os, signal, sys, threading, time
from pathlib import Path

import pytest

from conkernel import ConKernelManager, ConnectionLostError, DeadKernelError, KernelUnresponsiveError, run_kernel

SLEEP = 'import time; time.sleep(30)'


def children() -> set:
    "PIDs of this process's live child processes"
    pids = set()
    for task in Path('/proc/self/task').iterdir(): pids |= {int(p) for p in (task/'children').read_text().split()}
    def live(pid):
        try: return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
        except OSError: return False
    return {p for p in pids if live(p)}


def fds() -> int: return len(os.listdir('/proc/self/fd'))


async def drain(stream):
    "The last item of an async iterator (its reply), or its error"
    last = None
    async for last in stream: pass
    return last


def requests(kc, sid, code=SLEEP, skip=()):
    "One request of each kind but `skip`, each in flight: {kind: task or the exception it was refused with}"
    kinds = dict(
        execute=lambda: kc.execute(code, reply=True, timeout=None),
        run=lambda: kc.run(code),
        stream=lambda: drain(kc.stream(code)),
        stdin=lambda: kc.execute_interactive('input("? ")', stdin_hook=lambda m: asyncio.sleep(1, 'x'), allow_stdin=True,
                                             timeout=None, output_hook=lambda m: None),
        complete=lambda: kc.complete('imp', reply=True, timeout=None),
        control=lambda: kc.control_request('kernel_info_request', timeout=None),
        subshell=lambda: kc.execute(code, reply=True, timeout=None, subshell_id=sid))
    out = {}
    for kind, make in kinds.items():
        if kind in skip: continue
        try: out[kind] = asyncio.ensure_future(make())
        except Exception as e: out[kind] = e  # refused at once: the client already knows
    return out


async def outcomes(waiters:dict, bound:float) -> dict:
    "Each waiter's reply or exception; fails if any is still waiting after `bound` seconds"
    futs = {k: w for k, w in waiters.items() if not isinstance(w, Exception)}
    done, waiting = await asyncio.wait(futs.values(), timeout=bound) if futs else (set(), set())
    assert not waiting, f"still waiting after {bound} s: {[k for k, f in futs.items() if f in waiting]}"
    return {k: (w if isinstance(w, Exception) else (w.exception() or w.result())) for k, w in waiters.items()}


def check(results:dict, allowed:tuple, label:str):
    for kind, r in results.items():
        if isinstance(r, BaseException): assert isinstance(r, allowed), (label, kind, repr(r))
        # a reply that still came is fine: the control request answers before a fault


# The local transport (ZMQ): the kernel is killed, exits, or freezes

LOCAL = dict(
    kill=(lambda km, kc: os.kill(km.provisioner.process.pid, signal.SIGKILL), (DeadKernelError,), 3),
    exit=(lambda km, kc: kc.execute('import os; os._exit(3)', subshell_id=km.free_sid), (DeadKernelError,), 3),
    stop=(lambda km, kc: os.kill(km.provisioner.process.pid, signal.SIGSTOP), (KernelUnresponsiveError,), 7))


@pytest.mark.parametrize('fault', LOCAL)
async def test_local_faults(fault):
    act, allowed, bound = LOCAL[fault]
    before_kids, before_fds = children(), fds()
    async with run_kernel() as (km, kc):
        km.sid, km.free_sid = await kc.create_subshell(), await kc.create_subshell()  # a busy one, and one for the exit
        before = requests(kc, km.sid)
        await asyncio.sleep(0.5)
        act(km, kc)
        await asyncio.sleep(0.05)
        after = requests(kc, km.sid)  # sent once the fault happened: refused at once or failed with the rest
        start = time.monotonic()
        try:
            check(await outcomes(before, bound), allowed, f'{fault}: in flight')
            check(await outcomes(after, bound), allowed, f'{fault}: after')
        finally:
            if fault == 'stop': os.kill(km.provisioner.process.pid, signal.SIGCONT)
        assert time.monotonic() - start < bound
        assert len(kc.pending) == 0
    assert children() - before_kids == set()
    assert not [t for t in threading.enumerate() if t.name == 'conkernel-selector']
    assert fds() <= before_fds + 2


async def test_requests_sent_while_a_slow_kernel_starts_get_their_replies():
    "A kernel that takes 2 s to start: requests sent before it is ready wait for it (no heartbeat verdict meanwhile)"
    code = 'import sys, time; time.sleep(2); from ipykernel.kernelapp import launch_new_instance; launch_new_instance(argv=["-f", sys.argv[1]])'
    km = ConKernelManager(argv=[sys.executable, '-c', code, '{connection_file}'])
    await km.start_kernel()
    try:
        kc = km.client()
        starting = kc.start_channels(timeout=30)
        # not a prompt: an input_request the kernel sends before the client's stdin connection is up is lost (the ROUTER
        # drops it), and the kernel then waits in input() for good, with every later request queued behind it
        waiters = requests(kc, None, '1', skip=('stdin', 'subshell'))
        await starting
        results = await outcomes(waiters, 20)
        assert all(isinstance(r, dict) or getattr(r, 'status', None) == 'ok' for r in results.values()), results
        assert len(kc.pending) == 0
        await kc.astop_channels()
    finally: await km.shutdown_kernel(now=True)


async def test_a_crash_during_restart_fails_waiters_and_the_next_restart_recovers():
    async with run_kernel() as (km, kc):
        waiters = requests(kc, await kc.create_subshell())
        await asyncio.sleep(0.3)
        old = km.provisioner.process.pid
        restart = asyncio.ensure_future(km.restart_kernel())
        while (p := getattr(km.provisioner, 'process', None)) is None or p.pid == old: await asyncio.sleep(0.002)
        os.kill(p.pid, signal.SIGKILL)  # the new kernel dies while it starts
        check(await outcomes(waiters, 5), (DeadKernelError,), 'crash during restart')
        done = await asyncio.wait_for(asyncio.gather(restart, return_exceptions=True), 60)
        assert done[0] is None or isinstance(done[0], DeadKernelError), done
        await km.restart_kernel()
        assert (await kc.execute('1', reply=True, timeout=30))['content']['status'] == 'ok'
        assert len(kc.pending) == 0


# The websocket transport, through a proxy: the connection drops, stalls, is refused; the kernel dies

pytest.importorskip('websockets'), pytest.importorskip('jupyter_server')
from conkernel.testing import LocalServer
from proxy import Proxy


@pytest.fixture(scope='module')
def server():
    with LocalServer('server') as s: yield s


async def cut(proxy, km): proxy.cut()

async def stall(proxy, km):
    proxy.mode = 'blackhole'
    await asyncio.sleep(1)
    proxy.mode = 'pass'
    proxy.cut()

async def refuse(proxy, km):
    proxy.mode = 'refuse'
    proxy.cut()

REMOTE = dict(  # fault, exceptions allowed besides a reply, bound in seconds
    cut=(cut, (ConnectionLostError,), 15),  # replies the server kept come; lost ones fail once the shells answer
    stall=(stall, (ConnectionLostError,), 15),
    refuse=(refuse, (ConnectionLostError,), 8))


@pytest.mark.parametrize('fault', REMOTE)
async def test_remote_faults(fault, server):
    act, allowed, bound = REMOTE[fault]
    proxy = await Proxy(int(server.url.rsplit(':', 1)[1])).start()
    try:
        async with run_kernel(url=proxy.url, token=server.token, reconnect_timeout=2) as (km, kc):
            sid = await kc.create_subshell()
            before = requests(kc, sid, 'import time; time.sleep(1.5)')
            await asyncio.sleep(0.5)
            await act(proxy, km)
            after = requests(kc, sid, 'import time; time.sleep(1.5)')
            results = {**{f'{k} before': v for k, v in (await outcomes(before, bound)).items()},
                       **{f'{k} after': v for k, v in (await outcomes(after, bound)).items()}}
            check(results, allowed, fault)
            for kind, r in results.items():
                if isinstance(r, dict): assert r['msg_type'].endswith('_reply'), (kind, r)
            assert len(kc.pending) == 0
            proxy.mode = 'pass'
    finally: await proxy.close()
