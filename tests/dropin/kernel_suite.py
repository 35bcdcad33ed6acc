"""jupyter_kernel_test's suite for ipykernel, on jupyter_client's blocking client or on conkernel's

Run by tests/test_dropin_suites.py in a subprocess, once with `DROPIN_CLIENT=stock` (the suite's own setup:
`start_new_kernel`, a `BlockingKernelClient`) and once with `DROPIN_CLIENT=conkernel`, where each class's
`setUpClass` and `tearDownClass` give the tests conkernel's `BlockingConKernelClient` instead; the tests
themselves are jupyter_kernel_test's, unchanged."""
import os

import jupyter_kernel_test as jkt

CONKERNEL = os.environ.get('DROPIN_CLIENT', 'stock') == 'conkernel'


class _ConKernel:
    "setUpClass/tearDownClass that give the tests a `BlockingConKernelClient` on a started kernel"
    @classmethod
    def setUpClass(cls):
        if not CONKERNEL: return super().setUpClass()
        from conkernel import blocking_kernel
        cls._kernel = blocking_kernel(cls.kernel_name)
        cls.kc = cls._kernel.__enter__()

    @classmethod
    def tearDownClass(cls):
        if not CONKERNEL: return super().tearDownClass()
        cls._kernel.__exit__(None, None, None)


class _ConKernelUnstarted:
    "setUpClass/tearDownClass like IopubWelcomeTests': a started kernel, a client whose channels the test starts"
    @classmethod
    def setUpClass(cls):
        if not CONKERNEL: return super().setUpClass()
        from conkernel import BlockingConKernelClient, ConKernelManager, LoopThread
        cls._loop = LoopThread()
        cls.km = ConKernelManager(kernel_name=cls.kernel_name)
        cls._loop.call(cls.km.start_kernel())
        cls.kc = BlockingConKernelClient(cls.km.client(), cls._loop)

    @classmethod
    def tearDownClass(cls):
        if not CONKERNEL: return super().tearDownClass()
        try:
            if cls.kc.channels_running: cls.kc.stop_channels()
            cls._loop.call(cls.km.shutdown_kernel(now=True))
        finally: cls._loop.stop()


class IPyKernelTests(_ConKernel, jkt.KernelTests):
    kernel_name = 'python3'
    language_name = 'python'
    file_extension = '.py'
    code_hello_world = 'print("hello, world")'
    code_stderr = 'import sys; print("to stderr", file=sys.stderr)'
    completion_samples = [dict(text='zi', matches={'zip'}), dict(text='pri', matches={'print'})]
    complete_code_samples = ['1', 'print("done")', 'import os']
    incomplete_code_samples = ['for i in range(3):', 'x = (']
    invalid_code_samples = ['1 +* 2', 'import = 7']
    code_page_something = 'len?'
    code_generate_error = 'raise ValueError("on purpose")'
    code_execute_result = [dict(code='6*7', result='42'), dict(code='"ab" * 2', result="'abab'")]
    code_display_data = [dict(code='from IPython.display import HTML, display; display(HTML("<b>b</b>"))', mime='text/html')]
    code_history_pattern = '6[*]7'
    supported_history_operations = ('tail', 'search')  # 'range' on the current session: IPython numbers it 0, not as 'tail' did
    code_inspect_sample = 'zip'
    code_clear_output = 'from IPython.display import clear_output; clear_output()'


class IPyKernelWelcomeTests(_ConKernelUnstarted, jkt.IopubWelcomeTests):
    kernel_name = 'python3'
    support_iopub_welcome = True
