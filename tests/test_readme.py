"The README's commands and quick-start script work as written."
import re, subprocess, sys
from pathlib import Path

README = (Path(__file__).resolve().parent.parent/'README.md').read_text()


def test_readme_script_runs():
    script = next(b for b in re.findall(r'```python\n(.*?)```', README, re.S) if 'asyncio.run(' in b)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '100 replies'


def test_demo_command_shows_conkernel_routing_every_reply():
    out = subprocess.run([sys.executable, '-m', 'conkernel', '-n', '30'], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    rows = [l for l in out.stdout.splitlines() if ' conkernel ' in l]
    assert len(rows) == 2 and rows[0].split()[-2] == '2/2' and rows[1].split()[-2] == '30/30', out.stdout
