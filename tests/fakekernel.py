"A scripted fake kernel: pyzmq sockets in a thread speaking the Jupyter wire protocol, able to send bad input."
import copy, threading, time

import zmq
from jupyter_client.session import DELIM, Session


class FakeKernel:
    """Answers kernel_info and execute requests like a kernel. An execute's code names a script step:
    a kind of bad message (`BAD`) to send before the true reply, `unlisted_iopub` to publish an output of a type the
    messaging specification does not list, or `sleep:<s>` to answer late."""
    BAD = 'bad_signature too_few_frames not_json missing_header unknown_type unknown_parent replayed oversized'.split()

    def __init__(self, key:bytes=b'fake-key', oversize:int=200_000):
        self.ctx, self.session, self.oversize = zmq.Context(), Session(key=key), oversize
        self.sockets = {name: self.ctx.socket(kind) for name,kind in
                        dict(shell=zmq.ROUTER, control=zmq.ROUTER, stdin=zmq.ROUTER, iopub=zmq.PUB, hb=zmq.REP).items()}
        ports = {f'{name}_port': s.bind_to_random_port('tcp://127.0.0.1') for name,s in self.sockets.items()}
        self.connection_info = dict(ip='127.0.0.1', transport='tcp', key=key.decode(), signature_scheme='hmac-sha256', **ports)
        self.last_reply, self.count = None, 0  # frames of the last true reply; requests handled
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        poller = zmq.Poller()
        for name in 'shell','control','hb': poller.register(self.sockets[name], zmq.POLLIN)
        while not self._stop.is_set():
            for sock,_ in poller.poll(50):
                frames = sock.recv_multipart()
                if sock is self.sockets['hb']: sock.send_multipart(frames); continue
                idents, rest = self.session.feed_identities(frames)
                self.handle(sock, idents, self.session.deserialize(rest))

    def send(self, sock, idents, msg_type, content, parent):
        "Send a signed message; gives its frames"
        frames = self.session.serialize(self.session.msg(msg_type, content, parent=parent), ident=idents)
        sock.send_multipart(frames)
        return frames

    def status(self, parent, state): self.send(self.sockets['iopub'], None, 'status', {'execution_state': state}, parent)

    def handle(self, sock, idents, msg):
        self.count += 1
        self.status(msg, 'busy')
        if msg['msg_type'] == 'execute_request':
            code = msg['content']['code']
            if code.startswith('sleep:'): time.sleep(float(code[6:]))
            elif code in self.BAD: self.send_bad(code, sock, idents, msg)
            elif code == 'unlisted_iopub': self.send(self.sockets['iopub'], None, 'x_custom_event', {'n': 1}, msg)
            reply = self.send(sock, idents, 'execute_reply', {'status': 'ok', 'code': code}, msg)
        else:
            content = {'status': 'ok', 'protocol_version': '5.4'} if msg['msg_type'] == 'kernel_info_request' else {'status': 'ok'}
            reply = self.send(sock, idents, msg['msg_type'].replace('_request', '_reply'), content, msg)
        self.status(msg, 'idle')
        self.last_reply = reply

    def raw(self, sock, idents, parts, sign=True):
        "Send `parts` (header, parent, metadata, content, ...) signed by this kernel's key unless `sign` is false"
        sock.send_multipart([*idents, DELIM, self.session.sign(parts[:4]) if sign else b'0'*64, *parts])

    def send_bad(self, kind, sock, idents, parent):
        "Send one message of `kind` that, were it accepted, would answer `parent` with status 'bad'"
        s = self.session
        reply = s.msg('execute_reply', {'status': 'bad'}, parent=parent)
        parts = [s.pack(reply['header']), s.pack(reply['parent_header']), s.pack({}), s.pack(reply['content'])]
        if kind == 'bad_signature': self.raw(sock, idents, parts, sign=False)
        elif kind == 'too_few_frames': sock.send_multipart([*idents, DELIM, s.sign(parts[:4]), parts[0]])
        elif kind == 'not_json': self.raw(sock, idents, [*parts[:3], b'{not json'])
        elif kind == 'missing_header':
            self.raw(sock, idents, [s.pack({'msg_type': 'execute_reply'}), *parts[1:]])
        elif kind == 'unknown_type': self.send(sock, idents, 'bogus', {'status': 'bad'}, parent)
        elif kind == 'unknown_parent':
            foreign = copy.deepcopy(parent['header'])
            foreign['session'] = 'someone-else'
            self.send(sock, idents, 'execute_reply', {'status': 'bad'}, {'header': foreign})
        elif kind == 'replayed':  # the previous request's true reply, again
            if self.last_reply: sock.send_multipart(self.last_reply)
        elif kind == 'oversized': self.send(sock, idents, 'execute_reply', {'status': 'bad', 'pad': 'x' * self.oversize}, parent)

    def stop(self):
        self._stop.set()
        self.thread.join()
        for s in self.sockets.values(): s.close(0)
        self.ctx.term()
