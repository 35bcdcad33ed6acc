"""Run one notebook scenario through nbclient or papermill, with jupyter_client's manager or conkernel's

`python nbrun.py nbclient|papermill SCENARIO MANAGER DIR` (MANAGER: `stock` or `conkernel`) writes the notebook
for SCENARIO in DIR, runs it, and prints one JSON line: what was raised (`module.Class` and its bases, or None),
the error's `ename` when a cell failed, and the outputs of the cells that ran. `python nbrun.py write SCENARIO
PATH` writes the notebook alone and prints its NotebookClient settings. `python nbrun.py cli ARGS` is papermill's
own command line with one more engine, `conkernel`: nbclient with `ConKernelManager` as its `kernel_manager_class`
(papermill passes engine keyword arguments on to nbclient's `NotebookClient`)."""
import json, sys

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

CELLS = {  # scenario -> the notebook's cells, and NotebookClient's settings
    'ok': (['x = 6*7\nx', 'print("hello")'], {}),
    'dies': (['x = 1', 'import os\nos._exit(1)', 'x'], {}),  # the kernel process exits mid-run
    'timeout': (['import time\ntime.sleep(120)', 'x = 1'], dict(timeout=2)),
    'timeout_interrupt': (['import time\ntime.sleep(120)', 'x = 1'], dict(timeout=2, interrupt_on_timeout=True)),
}

def write_notebook(scenario:str, path:str):
    nb = new_notebook(cells=[new_code_cell(src) for src in CELLS[scenario][0]])
    nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
    nbformat.write(nb, path)

def manager_class(manager:str):
    if manager == 'stock': return None  # nbclient's default: jupyter_client's AsyncKernelManager
    from conkernel import ConKernelManager
    return ConKernelManager

def _outcome(exc, nb) -> dict:
    outs = [[{k: o.get(k) for k in ('output_type', 'name', 'text', 'ename')} | ({'data': o['data'].get('text/plain')} if 'data' in o else {})
             for o in c.get('outputs', [])] for c in nb.cells]
    mro = [] if exc is None else [f'{c.__module__}.{c.__qualname__}' for c in type(exc).__mro__]
    return dict(raised=mro[0] if mro else None, mro=mro,  # a drop-in raises an instance of what stock raised
                ename=getattr(exc, 'ename', None), message=None if exc is None else str(exc).strip().splitlines()[-1:],
                outputs=outs)

def run_nbclient(scenario:str, manager:str, path:str) -> dict:
    from nbclient import NotebookClient
    write_notebook(scenario, path)
    nb = nbformat.read(path, as_version=4)
    kw = dict(CELLS[scenario][1], kernel_name='python3')
    if (cls := manager_class(manager)) is not None: kw['kernel_manager_class'] = cls
    try: NotebookClient(nb, **kw).execute(); exc = None
    except Exception as e: exc = e
    return _outcome(exc, nb)

def run_papermill(scenario:str, manager:str, path:str) -> dict:
    import papermill as pm
    write_notebook(scenario, path)
    kw = dict(execution_timeout=CELLS[scenario][1].get('timeout'))
    if (cls := manager_class(manager)) is not None: kw['kernel_manager_class'] = cls
    out = path.replace('.ipynb', '-out.ipynb')
    try: pm.execute_notebook(path, out, kernel_name='python3', progress_bar=False, **kw); exc = None
    except Exception as e: exc = e
    return _outcome(exc, nbformat.read(out, as_version=4))

def papermill_cli(args:list):
    "papermill's command line, with the `conkernel` engine registered beside its own"
    from papermill.cli import papermill
    from papermill.engines import NBClientEngine, papermill_engines
    class ConKernelEngine(NBClientEngine):
        "nbclient, with conkernel's manager (and so its client)"
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            return super().execute_managed_notebook(nb_man, kernel_name, kernel_manager_class=manager_class('conkernel'), **kwargs)
    papermill_engines.register('conkernel', ConKernelEngine)
    papermill.main(args, prog_name='papermill')

if __name__ == '__main__':
    if sys.argv[1] == 'cli': papermill_cli(sys.argv[2:])
    elif sys.argv[1] == 'write':
        write_notebook(*sys.argv[2:4])
        print(json.dumps(CELLS[sys.argv[2]][1]))
    else:
        how, scenario, manager, folder = sys.argv[1:5]
        run = dict(nbclient=run_nbclient, papermill=run_papermill)[how]
        print(json.dumps(run(scenario, manager, f'{folder}/{how}-{scenario}-{manager}.ipynb')))
