"""conkernel's classes under jupyter_client's names, for jupyter_client's own tests

tests/dropin/harness.py copies jupyter_client's tests and, after each of their imports of a name below from
jupyter_client, adds `from jc_swap import <name>`: the tests then run unchanged on conkernel's classes.
conftest.py gets `jp_start_kernel` from here in place of pytest-jupyter's, which starts jupyter_client's own."""
import pytest
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME

from conkernel import ConIOLoopKernelManager, ConKernelManager, ConMultiKernelManager

AsyncKernelManager = ConKernelManager
AsyncIOLoopKernelManager = ConIOLoopKernelManager  # what ConMultiKernelManager's kernels are, in place of AsyncMultiKernelManager's
AsyncMultiKernelManager = ConMultiKernelManager
SWAPPED = 'AsyncKernelManager', 'AsyncIOLoopKernelManager', 'AsyncMultiKernelManager', 'start_new_async_kernel'


async def start_new_async_kernel(startup_timeout:float=60, kernel_name:str='python', **kwargs):
    "jupyter_client's `start_new_async_kernel` on a `ConKernelManager`: a started kernel and a ready client"
    km = ConKernelManager(kernel_name=kernel_name)
    await km.start_kernel(**kwargs)
    kc = km.client()
    kc.start_channels()  # as code written for jupyter_client calls it: not awaited, then wait_for_ready
    try: await kc.wait_for_ready(timeout=startup_timeout)
    except BaseException:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        raise
    return km, kc


@pytest.fixture
def jp_start_kernel(jp_environ, jp_asyncio_loop):
    "pytest-jupyter's fixture of that name, on `start_new_async_kernel` above: each kernel is shut down after the test"
    started = []
    async def start(kernel_name=NATIVE_KERNEL_NAME, **kwargs):
        started.append(await start_new_async_kernel(kernel_name=kernel_name, **kwargs))
        return started[-1]
    yield start
    for km, kc in started: kc.stop_channels()
    for km, kc in started:
        jp_asyncio_loop.run_until_complete(km.shutdown_kernel(now=True))
        assert km.context.closed, "the manager's ZMQ context is still open after shutdown"
