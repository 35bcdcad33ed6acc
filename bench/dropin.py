"""Every drop-in comparison: third-party suites stock and on conkernel's classes, with counts, differences and wall times.

tests/test_dropin_suites.py runs a subset under 3 minutes; this runs all of it: jupyter_kernel_test's suite for
ipykernel, nbclient and papermill (its API and its command line) on notebooks that run, whose kernel dies and
whose cell times out, and every file of jupyter_client's tests that uses a class conkernel replaces (test_restarter
too: `ConMultiKernelManager`'s kernels are `ConKernelManager`s where `AsyncMultiKernelManager`'s are
`AsyncIOLoopKernelManager`s). Each pair runs side by side (stock and swapped at once, on 2 cores). Prints a
markdown table and every differing test; `--json PATH` also writes the full results."""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tests'/'dropin'))
import harness  # noqa: E402


def suite_row(name, stock, swapped, wall):
    c = lambda r: ', '.join(f'{n} {k}' for k, n in sorted(harness.counts(r).items()))
    diff = harness.compare(stock, swapped)
    return dict(suite=name, stock=c(stock), swapped=c(swapped), differing=len(diff), wall=wall, details=harness.describe(diff))

def timed(run):
    start = time.monotonic()
    res = harness.both(run)
    return (*res, round(time.monotonic() - start, 1))

def main(parts):
    rows, raw = [], {}
    if 'kernel_test' in parts:
        stock, swapped, wall = timed(harness.kernel_suite)
        rows.append(suite_row('jupyter_kernel_test (ipykernel)', stock, swapped, wall)); raw['kernel_test'] = (stock, swapped)
        print(f"| {rows[-1]['suite']} | done in {wall} s", flush=True)
    if 'notebooks' in parts:
        with tempfile.TemporaryDirectory() as tmp:
            for how, scenario in harness.NOTEBOOK_FULL:
                stock, swapped, wall = timed(lambda m: harness.notebook_run(how, scenario, m, Path(tmp)))
                why = harness.notebook_differences(stock, swapped)
                rows.append(dict(suite=f'{how} {scenario}', stock=stock['raised'] or 'ok', swapped=swapped['raised'] or 'ok',
                                 differing=len(why), wall=wall, details='; '.join(why) or 'no difference'))
                raw[f'{how} {scenario}'] = (stock, swapped)
                print(f"| {rows[-1]['suite']} | done in {wall} s", flush=True)
            for scenario in harness.CLI_FULL:
                stock, swapped, wall = timed(lambda m: harness.papermill_cli(scenario, m, Path(tmp)))
                same = stock['returncode'] == swapped['returncode']
                rows.append(dict(suite=f'papermill CLI {scenario}', stock=f"exit {stock['returncode']}", swapped=f"exit {swapped['returncode']}",
                                 differing=int(not same), wall=wall, details='no difference' if same else f"swapped: {swapped['tail']}"))
                raw[f'papermill CLI {scenario}'] = (stock, swapped)
                print(f"| {rows[-1]['suite']} | done in {wall} s", flush=True)
    if 'jupyter_client' in parts:
        start = time.monotonic()
        stock_tree, swapped_tree = harness.jupyter_client_tests()
        print(f"| jupyter_client's tests ready in {time.monotonic() - start:.1f} s", flush=True)
        for f in harness.JC_FULL:
            stock, swapped, wall = timed(lambda m: harness.jupyter_client_suite(stock_tree if m == 'stock' else swapped_tree, [f], timeout=30))
            rows.append(suite_row(f'jupyter_client {f}', stock, swapped, wall)); raw[f] = (stock, swapped)
            print(f"| {rows[-1]['suite']} | done in {wall} s", flush=True)
    print(f"\n{os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    print('| suite | stock | swapped | differing | wall s (both) |\n|---|---|---|---:|---:|')
    for r in rows: print(f"| {r['suite']} | {r['stock']} | {r['swapped']} | {r['differing']} | {r['wall']} |")
    print(f"\ntotal wall {sum(r['wall'] for r in rows):.0f} s\n")
    for r in rows:
        if r['differing']: print(f"{r['suite']}:\n  " + r['details'].replace('\n', '\n  '))
    return rows, raw

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('parts', nargs='*', default=['kernel_test', 'notebooks', 'jupyter_client'], help='kernel_test, notebooks, jupyter_client')
    p.add_argument('--json', help='write every result (logs included) here')
    a = p.parse_args()
    rows, raw = main(a.parts)
    if a.json: Path(a.json).write_text(json.dumps(dict(rows=rows, raw=raw), indent=1, default=str))
