"""Real third-party software run on conkernel's classes, each compared with its stock run

conkernel's classes are drop-ins: code written for jupyter_client must behave the same with them. Each test
runs a third-party suite or tool twice in subprocesses, stock and with conkernel's class in jupyter_client's
place, and asserts the same passing tests (by name) or the same exit code and exception class:

- jupyter_kernel_test's suite for ipykernel (tests/dropin/kernel_suite.py) on `BlockingConKernelClient`;
- nbclient on notebooks that run, whose kernel dies, and whose cell times out (with and without
  `interrupt_on_timeout`), and papermill's command line on the dying one (exit code 138), on `ConKernelManager`;
- jupyter_client's own tests of its async managers and client, on `ConKernelManager` and `ConMultiKernelManager`
  (the subset the swap touches: `python bench/dropin.py` runs every file, and test_restarter, with wall times).

tests/dropin/harness.py says how (and installs what the suites need into `.venv-dropin/`, not here)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent/'dropin'))
import harness  # noqa: E402

pytestmark = [pytest.mark.skipif(sys.platform == 'win32', reason='the harness uses POSIX process groups and file locks'),
              pytest.mark.timeout(600)]  # each compares two suites of its own, started kernels and all


def _check_same_passes(stock:dict, swapped:dict):
    "The same tests pass in both runs (and some do: a harness that ran nothing would pass)"
    assert harness.passed(stock), f"the stock run passed no test (exit {stock['returncode']}):\n{stock['log'][-4000:]}"
    diff = {i: d for i, d in harness.compare(stock, swapped).items() if 'passed' in d[:2]}
    assert not diff, f"stock {harness.counts(stock)}, swapped {harness.counts(swapped)}; differing:\n{harness.describe(diff)}"


def test_jupyter_kernel_test_suite():
    "jupyter_kernel_test's KernelTests and IopubWelcomeTests for ipykernel: the same tests pass on conkernel's blocking client"
    _check_same_passes(*harness.both(harness.kernel_suite))


@pytest.mark.parametrize('how,scenario', harness.NOTEBOOK_FAST)
def test_notebook_faults(how, scenario, tmp_path):
    "nbclient with ConKernelManager raises what it raises stock (the same class or a subclass), with the same cell outputs"
    stock, swapped = harness.both(lambda manager: harness.notebook_run(how, scenario, manager, tmp_path))
    assert stock['raised'] != 'hang' and not (stock['raised'] or '').startswith('exit'), f'the stock run did not finish: {stock}'
    assert not (why := harness.notebook_differences(stock, swapped)), why


@pytest.mark.parametrize('scenario', harness.CLI_FAST)
def test_papermill_cli_exit_code(scenario, tmp_path):
    "papermill's command line exits as it does stock (138 when the kernel dies) with the conkernel engine"
    stock, swapped = harness.both(lambda manager: harness.papermill_cli(scenario, manager, tmp_path))
    assert stock['returncode'] == dict(ok=0, dies=138).get(scenario, stock['returncode']), stock
    assert swapped['returncode'] == stock['returncode'], (stock, swapped)


def test_jupyter_client_manager_tests():
    "jupyter_client's tests of AsyncKernelManager, AsyncMultiKernelManager and AsyncKernelClient pass on conkernel's"
    stock_tree, swapped_tree = harness.jupyter_client_tests()
    stock, swapped = harness.both(lambda m: harness.jupyter_client_suite(stock_tree if m == 'stock' else swapped_tree, harness.JC_FAST, timeout=30))
    _check_same_passes(stock, swapped)
