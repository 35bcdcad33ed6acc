"""The clients the benchmarks compare, each driving `total` trivial executes with `inflight` outstanding.

- conkernel: `ConKernelClient`, one task per in-flight slot, each awaiting `execute(..., reply=True)`.
- plain: jupyter_client's `AsyncKernelClient`, one request at a time (it cannot run concurrent requests safely).
- floor: raw pyzmq with pre-built signed requests; inbound messages are counted, never parsed. No Python
  client can do less per request, so it is the ceiling for throughput and the floor for CPU.
"""
import asyncio, time

import zmq
from jupyter_client import AsyncKernelClient
from jupyter_client.session import Session

CODE = 'pass'


async def conkernel_run(kc, total: int, inflight: int):
    "Send `total` executes through a ConKernelClient, `inflight` at a time"
    async def worker(n):
        for _ in range(n): await kc.execute(CODE, reply=True)
    share, extra = divmod(total, inflight)
    await asyncio.gather(*[worker(share + (i < extra)) for i in range(inflight)])


async def plain_client(info: dict):
    "A started jupyter_client AsyncKernelClient for the kernel described by `info`"
    kc = AsyncKernelClient()
    kc.load_connection_info(info)
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    return kc


async def plain_run(kc, total: int, inflight: int = 1):
    "Send `total` executes through jupyter_client's client, one at a time"
    assert inflight == 1, "jupyter_client's client cannot run concurrent requests safely"
    for _ in range(total): await kc.execute(CODE, reply=True, timeout=60)


class Floor:
    "Raw pyzmq client: pre-built signed requests, inbound messages counted unparsed"
    def __init__(self, info: dict):
        self.ctx = zmq.Context()
        self.session = Session(key=info['key'].encode() if isinstance(info['key'], str) else info['key'],
                               signature_scheme=info['signature_scheme'])
        self.shell = self._socket(zmq.DEALER, info, 'shell_port')
        self.iopub = self._socket(zmq.SUB, info, 'iopub_port')
        self.iopub.setsockopt(zmq.SUBSCRIBE, b'')

    def _socket(self, kind, info, port):
        sock = self.ctx.socket(kind)
        sock.linger = 0
        if info.get('curve_publickey'):
            pub, sec = (info[k].encode() if isinstance(info[k], str) else info[k] for k in ('curve_publickey', 'curve_secretkey'))
            sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = sec, pub, pub
        sock.connect(f"{info['transport']}://{info['ip']}:{info[port]}")
        return sock

    def requests(self, total: int) -> list:
        "`total` signed execute requests, ready to send"
        content = dict(code=CODE, silent=False, store_history=True, user_expressions={}, allow_stdin=False,
                       stop_on_error=True)
        return [self.session.serialize(self.session.msg('execute_request', content)) for _ in range(total)]

    async def run(self, total: int, inflight: int, requests: list = None, until_idle: bool = False):
        "Send `total` requests keeping `inflight` outstanding; returns when every reply (and with `until_idle` an idle status) arrived"
        loop, done = asyncio.get_running_loop(), asyncio.get_running_loop().create_future()
        todo = requests if requests is not None else self.requests(total)
        state = dict(sent=0, replies=0, iopub=0, idle=not until_idle)
        self.sent_at, self.replied_at, self.last_iopub_at = [], [], None

        def send():
            self.sent_at.append(time.perf_counter())
            self.shell.send_multipart(todo[state['sent']])
            state['sent'] += 1

        def on_shell():
            while True:
                try: self.shell.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again: break
                self.replied_at.append(time.perf_counter())
                state['replies'] += 1
                if state['sent'] < total: send()
            finish()
            if self.shell.getsockopt(zmq.EVENTS) & zmq.POLLIN: loop.call_soon(on_shell)

        def on_iopub():
            while True:
                try: frames = self.iopub.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again: break
                self.last_iopub_at = time.perf_counter()
                state['iopub'] += 1
                if not state['idle'] and b'"idle"' in frames[-1].bytes: state['idle'] = True
            finish()

        def finish():
            if state['replies'] == total and state['idle'] and not done.done(): done.set_result(None)

        loop.add_reader(self.shell.getsockopt(zmq.FD), on_shell)
        loop.add_reader(self.iopub.getsockopt(zmq.FD), on_iopub)
        try:
            for _ in range(min(inflight, total)): send()
            loop.call_soon(on_shell)
            await asyncio.wait_for(done, 120)
        finally:
            loop.remove_reader(self.shell.getsockopt(zmq.FD))
            loop.remove_reader(self.iopub.getsockopt(zmq.FD))
        self.iopub_count = state['iopub']

    def close(self):
        self.ctx.destroy(linger=0)
