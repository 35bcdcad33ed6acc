"""A pytest plugin that writes each test's outcome to the JSON file named by `DROPIN_OUTCOMES`

Loaded with `-p outcomes` (this folder on `PYTHONPATH`) by tests/dropin/harness.py, so that a suite run in a
subprocess reports the tests it collected and, per test id, 'passed', 'failed', 'error' (its setup or teardown
failed), 'skipped', 'xfailed', 'xpassed' or 'incomplete' (set up, but no result came), and the line that says why."""
import json, os

_results, _collected = {}, []

def _why(report) -> str:
    "The first line of the failure's message, or the skip reason"
    if report.skipped and isinstance(report.longrepr, tuple): return report.longrepr[2]
    crash = getattr(report.longrepr, 'reprcrash', None)
    if crash is not None: return crash.message.splitlines()[0] if crash.message else ''
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ''

def pytest_collection_finish(session): _collected.extend(item.nodeid for item in session.items)

def _set(nodeid, outcome, why, when): _results[nodeid] = dict(outcome=outcome, why=why, when=when)

def pytest_runtest_logreport(report):
    nodeid, prev = report.nodeid, _results.get(report.nodeid)
    if type(report).__name__ == 'SubtestReport':  # a unittest subTest: its failure fails the test, its skip does not
        if report.failed: _set(nodeid, 'failed', f'subtest {report.context.kwargs}: {_why(report)}', 'call')
        return
    if prev is not None and prev['outcome'] not in ('passed', 'incomplete'): return  # the first failure is the one that says why
    if hasattr(report, 'wasxfail'): _set(nodeid, 'xfailed' if report.skipped else 'xpassed', report.wasxfail, report.when)
    elif report.when == 'setup': _set(nodeid, 'incomplete' if report.passed else 'error' if report.failed else 'skipped', _why(report), 'setup')
    elif report.when == 'call': _set(nodeid, report.outcome, _why(report), 'call')
    elif report.failed: _set(nodeid, 'error', _why(report), 'teardown')

def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get('DROPIN_OUTCOMES')
    if path:
        with open(path, 'w') as f: json.dump(dict(exitstatus=int(exitstatus), collected=_collected, tests=_results), f, indent=1)
