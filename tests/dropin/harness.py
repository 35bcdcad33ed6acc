"""Run third-party suites in subprocesses, stock and with conkernel's classes swapped in, and compare them

Used by tests/test_dropin_suites.py (a fast subset) and bench/dropin.py (everything, with wall times). The
suites run in an overlay environment (`overlay()`): a virtual environment in the cache (`.venv-dropin/` at the
repo's root, or `$DROPIN_CACHE`) that sees every package of the running one, so the versions compared are
exactly those installed, and adds what the suites need and the running environment lacks: pytest-jupyter
(jupyter_client's test dependency, kept out of the running environment), and papermill, nbclient and
jupyter_kernel_test when they are missing. jupyter_client's tests are not in its wheel: `jupyter_client_tests()`
downloads the sdist of the installed version (pip download), keeps its tests/ and pyproject.toml (its pytest
settings) as the stock tree, and writes a swapped tree in which each import of a name in `jc_swap.SWAPPED` from
jupyter_client is followed by `from jc_swap import <name>`."""
from __future__ import annotations
import ast, fcntl, hashlib, importlib.metadata, importlib.util, json, os, shutil, signal, site, subprocess, sys, tarfile, tempfile, time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NEEDS = dict(pytest_jupyter='pytest-jupyter==0.11.0',  # always: jupyter_client's test extra asks for pytest-jupyter[client]>=0.6.2
             papermill='papermill>=2.6', nbclient='nbclient>=0.10', jupyter_kernel_test='jupyter_kernel_test>=0.7')  # when missing

def cache_dir() -> Path:
    return Path(os.environ.get('DROPIN_CACHE') or REPO/'.venv-dropin')

@contextmanager
def _locked(path:Path):
    "Hold an exclusive lock on `path` (two runs preparing one cache wait for each other)"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield

def overlay() -> str:
    "The python of the overlay environment, made (or remade, when what it must add changed) on first use"
    venv = cache_dir()/'venv'
    python = venv/'bin'/'python'
    wanted = [req for mod, req in NEEDS.items() if mod == 'pytest_jupyter' or importlib.util.find_spec(mod) is None]
    stamp = json.dumps(dict(python=sys.executable, wanted=wanted))
    with _locked(cache_dir()/'.lock'):
        if (venv/'.ready').is_file() and (venv/'.ready').read_text() == stamp: return str(python)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
        own = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                             check=True, capture_output=True, text=True).stdout.strip()
        parents = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
        Path(own, '_dropin_parent.pth').write_text(''.join(f'import site; site.addsitedir({p!r})\n' for p in parents))
        _pip('--python', str(python), 'install', *wanted)  # pip sees the parent's packages as installed: it adds only what is missing
        (venv/'.ready').write_text(stamp)
    return str(python)

def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith('PYTEST_')}  # nothing of an outer pytest (xdist) leaks in
    env['PYTHONPATH'] = os.pathsep.join([str(HERE), str(REPO)])  # this folder's helpers, and this checkout's conkernel
    return env

def run_pytest(args:list, cwd:Path, *, env:dict|None=None, timeout:float=600) -> dict:
    "Run pytest in a subprocess with the outcomes plugin: {'exitstatus', 'collected', 'tests': {id: {outcome, why}}, 'wall', 'log'}"
    with tempfile.TemporaryDirectory() as tmp:
        out, log = Path(tmp)/'outcomes.json', Path(tmp)/'log.txt'
        penv = _env() | (env or {}) | {'DROPIN_OUTCOMES': str(out)}
        cmd = [overlay(), '-m', 'pytest', '-p', 'outcomes', '-p', 'no:cacheprovider', *args]
        start = time.monotonic()
        with open(log, 'w') as logf:
            proc = subprocess.Popen(cmd, cwd=cwd, env=penv, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            try: proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        res = json.loads(out.read_text()) if out.exists() else dict(exitstatus=None, tests={})
        res.update(returncode=proc.returncode, wall=round(time.monotonic() - start, 1), log=log.read_text()[-20000:])
        return res

RENAMES = dict(ConKernelManager='AsyncKernelManager', ConMultiKernelManager='AsyncMultiKernelManager')

def _stock_id(test_id:str) -> str:
    "A swapped run's test id as the stock run names it: parameters that are classes carry conkernel's class names"
    name, bracket, params = test_id.partition('[')
    for con, stock in RENAMES.items(): params = params.replace(con, stock)
    return name + bracket + params

def compare(stock:dict, swapped:dict) -> dict:
    "Tests whose outcome differs: id -> (stock outcome, swapped outcome, swapped's reason)"
    swapped = dict(swapped, tests={_stock_id(i): t for i, t in swapped['tests'].items()})
    ids = sorted(set(stock['tests']) | set(swapped['tests']))
    get = lambda res, i: res['tests'].get(i, dict(outcome='missing', why='not run'))
    return {i: (get(stock, i)['outcome'], get(swapped, i)['outcome'], get(swapped, i)['why'])
            for i in ids if get(stock, i)['outcome'] != get(swapped, i)['outcome']}

def passed(res:dict) -> set: return {_stock_id(i) for i, t in res['tests'].items() if t['outcome'] == 'passed'}

def counts(res:dict) -> dict:
    c = {}
    for t in res['tests'].values(): c[t['outcome']] = c.get(t['outcome'], 0) + 1
    return c

# jupyter_kernel_test

def kernel_suite(client:str, timeout:float=20) -> dict:
    "jupyter_kernel_test's suite for ipykernel (tests/dropin/kernel_suite.py) with `client` 'stock' or 'conkernel'"
    return run_pytest([f'--timeout={timeout}', 'kernel_suite.py'], HERE, env=dict(DROPIN_CLIENT=client), timeout=600)

# papermill and nbclient

def notebook_run(how:str, scenario:str, manager:str, folder:Path, timeout:float=120) -> dict:
    "One tests/dropin/nbrun.py scenario in a subprocess: what it raised (`raised`, and `mro`) or 'hang'"
    cmd = [overlay(), str(HERE/'nbrun.py'), how, scenario, manager, str(folder)]
    try: p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired: return dict(raised='hang', mro=[], ename=None, outputs=None, stderr='')
    if p.returncode or not p.stdout.strip(): return dict(raised=f'exit {p.returncode}', mro=[], ename=None, outputs=None, stderr=p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1]) | dict(stderr=p.stderr[-3000:])

def papermill_cli(scenario:str, manager:str, folder:Path, timeout:float=120) -> dict:
    "papermill's command line on the scenario's notebook: its exit code (None for a hang) and the last lines it wrote"
    nb = folder/f'cli-{scenario}.ipynb'
    settings = json.loads(subprocess.run([overlay(), str(HERE/'nbrun.py'), 'write', scenario, str(nb)], env=_env(), check=True,
                                         capture_output=True, text=True).stdout)
    out = str(folder/f'cli-{scenario}-{manager}-out.ipynb')
    timeout_s = settings.get('timeout')
    args = ['--no-progress-bar', *(['--execution-timeout', str(timeout_s)] if timeout_s else []), str(nb), out]
    cmd = ([overlay(), '-m', 'papermill', *args] if manager == 'stock' else
           [overlay(), str(HERE/'nbrun.py'), 'cli', '--engine', 'conkernel', *args])
    try: p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired: return dict(returncode=None, tail='hang')
    return dict(returncode=p.returncode, tail=p.stderr.strip().splitlines()[-1:])

# jupyter_client's own tests

def _swap_source(src:str) -> str:
    "`src` with `from jc_swap import <names>` after each top-level import of names in jc_swap.SWAPPED from jupyter_client"
    from jc_swap import SWAPPED
    lines, inserts = src.splitlines(keepends=True), []
    for node in ast.parse(src).body:
        if isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] == 'jupyter_client':
            names = [a.name for a in node.names if a.name in SWAPPED and a.asname is None]
            if names: inserts.append((node.end_lineno, f"from jc_swap import {', '.join(names)}  # conkernel's, in jupyter_client's place\n"))
    for lineno, text in reversed(inserts): lines.insert(lineno, text)
    return ''.join(lines)

def _write_swapped(stock:Path, swapped:Path):
    shutil.copytree(stock, swapped)
    for f in (swapped/'tests').glob('*.py'): f.write_text(_swap_source(f.read_text()))
    with open(swapped/'tests'/'conftest.py', 'a') as f:
        f.write("\nfrom jc_swap import jp_start_kernel  # noqa: E402,F401  conkernel's manager under pytest-jupyter's fixture\n")

def _pip(*args):
    subprocess.run([sys.executable, '-m', 'pip', '-q', *args], check=True, env=_env())

def jupyter_client_tests() -> tuple[Path, Path]:
    "The stock and swapped trees of the installed jupyter_client's tests: the sdist is fetched once, the swap redone when it changed"
    version = importlib.metadata.version('jupyter_client')
    root = cache_dir()/f'jupyter_client-{version}'
    stock, swapped = root/'stock', root/'swapped'
    swap = hashlib.sha256(b''.join((HERE/f).read_bytes() for f in ('harness.py', 'jc_swap.py'))).hexdigest()
    with _locked(cache_dir()/'.lock'):
        if not (stock/'tests').is_dir():
            shutil.rmtree(root, ignore_errors=True)
            with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
                _pip('download', '--no-deps', '--no-binary', ':all:', f'jupyter_client=={version}', '-d', tmp)
                with tarfile.open(next(Path(tmp).glob('jupyter_client-*.tar.gz'))) as tar:
                    top = tar.getnames()[0].split('/')[0]
                    keep = [m for m in tar.getmembers() if m.name.startswith(f'{top}/tests/') or m.name == f'{top}/pyproject.toml']
                    tar.extractall(tmp, members=keep, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
                root.mkdir(parents=True)
                shutil.move(Path(tmp)/top, stock)
        if not (swapped/'.swap').is_file() or (swapped/'.swap').read_text() != swap:
            shutil.rmtree(swapped, ignore_errors=True)
            _write_swapped(stock, swapped)
            (swapped/'.swap').write_text(swap)
    return stock, swapped

def jupyter_client_suite(tree:Path, targets:list, timeout:float=60, total:float=900) -> dict:
    """jupyter_client's tests `targets` (paths or ids under tree/) with its own pytest settings; a hang fails its test.
    A hang's timeout can end the whole run (its settings make warnings errors, and the test's cleanup then fails
    without an event loop): the tests it did not reach are run again in a new process, until none is left."""
    run = lambda ids: run_pytest([f'--timeout={timeout}', '-o', 'timeout_method=signal', '-q', *ids], tree, timeout=total)
    res = run(targets)
    unfinished = lambda: [i for i in res.get('collected', []) if res['tests'].get(i, {}).get('outcome', 'incomplete') == 'incomplete']
    while (left := unfinished()):
        more = run(left)
        res['tests'].update({i: t for i, t in more['tests'].items() if t['outcome'] != 'incomplete' or i not in res['tests']})
        if unfinished() == left: break  # no progress: what is left stays incomplete
        res.update(wall=res['wall'] + more['wall'], log=res['log'] + more['log'], reruns=res.get('reruns', 0) + 1)
    return res

# what is run, and how two runs are compared

JC_FAST = ['tests/test_multikernelmanager.py::TestAsyncKernelManager', 'tests/test_kernelmanager.py::TestAsyncKernelManager',
           'tests/test_kernelmanager.py::TestKernelManagerShutDownGracefully::test_async_signal_kernel_subprocesses',
           'tests/test_client.py::TestAsyncKernelClient', 'tests/test_provisioning.py::TestRuntime']  # the tests the swap touches
JC_FULL = ['tests/test_kernelmanager.py', 'tests/test_multikernelmanager.py', 'tests/test_client.py', 'tests/test_manager.py',
           'tests/test_provisioning.py', 'tests/test_restarter.py']  # test_restarter: AsyncIOLoopKernelManager, as ConMultiKernelManager replaces it
NOTEBOOK_FAST = [('nbclient', s) for s in ('ok', 'dies', 'timeout', 'timeout_interrupt')]
NOTEBOOK_FULL = NOTEBOOK_FAST + [('papermill', s) for s in ('ok', 'dies', 'timeout')]
CLI_FAST, CLI_FULL = ['dies'], ['ok', 'dies', 'timeout']

def both(run) -> tuple:
    "`run('stock')` and `run('conkernel')`, side by side in two threads"
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as ex: return tuple(ex.map(run, ['stock', 'conkernel']))

def notebook_differences(stock:dict, swapped:dict) -> list:
    "How a swapped notebook run differs from the stock one: not an instance of what stock raised, another `ename`, other outputs"
    why = []
    if stock['raised'] in ('hang', None) or stock['raised'].startswith('exit'):
        if swapped['raised'] != stock['raised']: why.append(f"raised {swapped['raised']} where stock gave {stock['raised']}")
    elif stock['raised'] not in swapped['mro']:
        why.append(f"raised {swapped['raised']} ({swapped.get('message')}), not an instance of stock's {stock['raised']}")
    if swapped['ename'] != stock['ename']: why.append(f"ename {swapped['ename']} where stock gave {stock['ename']}")
    if stock['raised'] is None and swapped['outputs'] != stock['outputs']: why.append(f"outputs {swapped['outputs']} != {stock['outputs']}")
    return why

def describe(diff:dict) -> str:
    "One line per differing test: stock -> swapped outcome, and why"
    return '\n'.join(f'{i}: {a} -> {b}: {why}' for i, (a, b, why) in diff.items()) or 'no difference'
