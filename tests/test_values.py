"Values: `eval` and `push` carry Python values as JSON, on ipykernel, ipymini and xeus-python, concurrently and on subshells."
import asyncio, math

import pytest

from conkernel import (ChannelsStoppedError, DeadKernelError, KernelError, NotPythonKernelError,
                       UnsupportedValueError, run_kernel)

VALUES = {'none': None, 'yes': True, 'no': False, 'int': -7, 'big': 2**100, 'float': 2.5, 'str': 'héllo\n\'"\\',
          'bytes': bytes(range(256)), 'list': [1, [2, 'x']], 'tuple': (1, (2,)), 'set': {1, 'a'}, 'fset': frozenset({3}),
          'dict': {'a': {'b': [None]}, '$bytes': 'data, not a tag'}, 'keys': {1: 'int', (2, 3): 'tuple', None: 'none'},
          'tag': {'$tuple': [1]}, 'empty': [{}, [], '', b'']}


@pytest.mark.parametrize('kernel', ['python3', 'py'])
async def test_eval_and_push_round_trip_every_supported_type(kernel):
    async with run_kernel(kernel) as (km, kc):
        before = set(await kc.eval('[*globals()]'))
        await kc.push(VALUES)
        assert set(await kc.eval('[*globals()]')) - before == set(VALUES)  # no helper left behind
        for name, v in VALUES.items(): assert await kc.eval(name) == v, name

        assert await kc.eval('type(tuple).__name__, type(fset).__name__, type(bytes).__name__') == ('tuple', 'frozenset', 'bytes')
        x = await kc.eval('[m.nan, m.inf, -m.inf, -0.0]  # a comment'.replace('m.', '__import__("math").'))
        assert math.isnan(x[0]) and x[1:3] == [math.inf, -math.inf] and math.copysign(1, x[3]) == -1
        assert await kc.eval('"x" * 1_000_000') == 'x' * 1_000_000
        # ints past Python's int-to-str digit limit (4300) cross in hex, both ways
        await kc.push(huge=-10**5000)
        assert await kc.eval('huge == -10**5000, 10**5000') == (True, 10**5000)
        # not one expression on its own: SyntaxError on the client, nothing sent
        for bad in ['', '   ', '1) if 0 else (2', '1)\n(2', 'x = 1', '1 +']:
            with pytest.raises(SyntaxError, match='eval takes one Python expression'): await kc.eval(bad)
        assert await kc.eval(' 1  # leading spaces, as the builtin eval allows') == 1
        # names push refuses, and names that clash with its parameters (the dict form sets them)
        with pytest.raises(ValueError, match='cannot push __builtins__'): await kc.push(__builtins__={})
        with pytest.raises(ValueError, match="'ﬁle' is read as 'file'"): await kc.push({'ﬁle': 1})
        with pytest.raises(TypeError, match=r"push\(\{'values'"): await kc.push(values=[1, 2])
        await kc.push({'values': [1], 'timeout': 2, 'self': 3})
        assert await kc.eval('values, timeout, self') == ([1], 2, 3)
        # user variables named __import__ or eval do not stand in for the builtins
        await kc.push({'__import__': None, 'eval': None})
        await kc.push(after_shadow=b'x')
        assert await kc.eval('__import__, eval, after_shadow') == (None, None, b'x')
        await kc.execute('del __import__, eval', reply=True)
        # an answer the client cannot read: UnsupportedValueError with the reason
        await kc.execute('class HL(type([])):\n    __hash__ = lambda s: 1', reply=True)  # `list` is a pushed variable here
        with pytest.raises(UnsupportedValueError, match='could not be read as a value: ValueError: a set element'):
            await kc.eval('{HL([1])}')
        if kernel == 'python3':  # a text/plain printer for str (IPython's display formatter) changes the answer's text
            fmt = 'get_ipython().display_formatter.formatters["text/plain"]'
            await kc.execute(fmt + '.for_type(type(""), lambda o, p, cycle: p.text(repr(o)[:10] + "..."))', reply=True)
            with pytest.raises(UnsupportedValueError, match='could not be read as a value: SyntaxError'): await kc.eval('"x" * 20')
            await kc.execute(fmt + '.pop(type(""))', reply=True)
            assert await kc.eval('"x" * 20') == 'x' * 20
        # an unsupported value names its type, on either side
        with pytest.raises(UnsupportedValueError, match=r'type collections\.deque'): await kc.eval('[1, __import__("collections").deque()]')
        with pytest.raises(UnsupportedValueError, match='type object'): await kc.push(x=[object()])
        with pytest.raises(ValueError, match='not valid variable names'): await kc.push({'1x': 1})
        # a failing expression: KernelError with the kernel's error
        with pytest.raises(KernelError) as e: await kc.eval('undefined_name + 1')
        assert (e.value.ename, e.value.evalue) == ('NameError', "name 'undefined_name' is not defined") and e.value.traceback
        # 200 at once, each its own value; and on a subshell
        assert await asyncio.gather(*[kc.eval(f'({i}, "{i}")') for i in range(200)]) == [(i, str(i)) for i in range(200)]
        async with kc.subshell() as sh:
            await sh.push(on_sub={'k': b'v'})
            assert await sh.eval('on_sub') == {'k': b'v'}
        # a kernel that does not speak Python is refused before anything is sent
        kc.kernel_info_reply['content']['language_info']['name'] = 'R'
        with pytest.raises(NotPythonKernelError, match="'R'"): await kc.eval('1')
        with pytest.raises(NotPythonKernelError): await kc.push(a=1)
        assert len(kc.pending) == 0


@pytest.mark.parametrize('text_plain', [
    "'[1, 2]...",                                          # not a literal (a text/plain printer for str)
    '5', "b'[]'",                                          # a literal, not a str
    repr('{"$bytes": "!!"}'), repr('{"$int": "12"}'),      # garbled tags
    repr('{"$tuple": 5}'), repr('{"$dict": [[1]]}'), repr('{"$unsupported": 5}'),
    repr('{"$dict": [[[1], 2]]}'), repr('{"$set": [{"a": 1}]}'),  # a key or element that arrives unhashable
    repr('[' * 100_000 + ']' * 100_000),                   # too deep for json
    repr('1' * 5000), repr('[1, 2'), None])                # past the int-to-str limit; not JSON; no text/plain
def test_an_answer_that_cannot_be_read_raises_one_error(text_plain):
    from conkernel.values import _value
    out = {'status': 'ok', 'data': {} if text_plain is None else {'text/plain': text_plain}}
    with pytest.raises(UnsupportedValueError, match="^the kernel's answer could not be read as a value: "): _value(out)


async def test_eval_on_a_kernel_without_subshells_uses_the_main_shell():
    async with run_kernel('xpython') as (km, kc):
        assert await kc.quick_subshell() is None
        await kc.push(v={'a': (1, b'x')})
        assert await kc.eval('v') == {'a': (1, b'x')}
        await kc.push(big=2**20000)
        assert await kc.eval('big == 2**20000, -big') == (True, -2**20000)
        with pytest.raises(KernelError, match='ZeroDivisionError'): await kc.eval('1/0')
        assert (await kc.complete('impo', reply=True))['content']['matches'][:1] == ['import']
        assert len(kc.pending) == 0


async def test_eval_cancelled_timed_out_stopped_and_on_a_dead_kernel():
    async with run_kernel() as (km, kc):
        slow = asyncio.ensure_future(kc.eval('__import__("time").sleep(2)'))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError): await slow
        with pytest.raises(TimeoutError): await kc.eval('__import__("time").sleep(2)', timeout=0.2)
        assert len(kc.pending) == 0
        waiting = asyncio.ensure_future(kc.eval('__import__("time").sleep(5)', subshell_id=None))
        await asyncio.sleep(0.3)
        await km.shutdown_kernel(now=True)
        with pytest.raises(DeadKernelError): await waiting
        with pytest.raises(DeadKernelError): await kc.eval('1')
        assert len(kc.pending) == 0
