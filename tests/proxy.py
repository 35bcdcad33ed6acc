"A TCP proxy on 127.0.0.1 for fault tests: it passes, black-holes the server's bytes, refuses, tarpits or cuts."
import asyncio


class Proxy:
    """Forwards connections to 127.0.0.1:`target`. `mode` decides what happens from now on: 'pass';
    'blackhole' (what the server sends is read and dropped, as by a stalled network); 'refuse' (new
    connections are closed at once); 'tarpit' (new connections are accepted and never answered).
    `cut()` aborts every open connection."""
    def __init__(self, target:int): self.target,self.mode,self.writers,self.tasks = target,'pass',set(),set()

    async def start(self):
        self.server = await asyncio.start_server(self._accept, '127.0.0.1', 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader, writer):
        self.tasks.add(asyncio.current_task())
        self.writers.add(writer)
        try:
            if self.mode == 'refuse': return
            if self.mode == 'tarpit': return await reader.read()  # until the client gives up or we cut
            up_reader, up_writer = await asyncio.open_connection('127.0.0.1', self.target)
            self.writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer, False), self._pipe(up_reader, writer, True))
        except (OSError, asyncio.CancelledError): pass
        finally:
            for w in list(self.writers):
                if w is writer: w.transport.abort()
            self.writers.discard(writer)
            self.tasks.discard(asyncio.current_task())

    async def _pipe(self, reader, writer, from_server:bool):
        try:
            while data := await reader.read(65536):
                if from_server and self.mode == 'blackhole': continue
                writer.write(data)
                await writer.drain()
        except OSError: pass
        finally: writer.transport.abort()

    def cut(self):
        "Abort every open connection, both sides"
        for w in list(self.writers): w.transport.abort()

    async def close(self):
        self.server.close()
        self.cut()
        for t in list(self.tasks): t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    @property
    def url(self): return f'http://127.0.0.1:{self.port}'
