"""The documentation site, as a reader sees it: built from the notebooks, served on 127.0.0.1 and opened in
headless Chromium, driven over the DevTools protocol. Outside CI the browser tests skip when Chromium or the
docs packages are missing; in CI they must run."""
import functools, json, os, re, shutil, subprocess, sys, threading, time, urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'tools'))
import build_docs


def test_nav_follows_renamed_notebooks(tmp_path):
    nbs = tmp_path/'nbs'
    nbs.mkdir()
    renamed = {'index': 'index', '06_outputs': 'a_outputs', '04_client': 'b_client', 'demo': '07_demo'}
    for old, new in renamed.items(): shutil.copy(root/'nbs'/f'{old}.ipynb', nbs/f'{new}.ipynb')
    home, notebooks, api = build_docs.write_sources(nbs, root/'conkernel', tmp_path/'src')
    assert home == {'conkernel': 'index.ipynb'}
    assert [list(p.values())[0] for p in notebooks['Notebooks']] == ['demo.ipynb', 'a_outputs.ipynb', 'b_client.ipynb']
    assert [list(p)[0] for p in notebooks['Notebooks']] == ['The demo', 'outputs', 'client']
    assert {'conkernel.client': 'api/client.md'} in api['API reference']
    shown = json.loads((tmp_path/'src'/'b_client.ipynb').read_text())
    assert shown['metadata']['language_info'] == {'name': 'python'}
    code = [c['source'] for c in shown['cells'] if c['cell_type'] == 'code']
    assert code and not any('#|' in src for src in code)


def test_api_pages_follow_all(tmp_path):
    for name, src in {'a': "__all__ = ['x', 'y']", 'b': '__all__ = []', 'c': 'x = 1',
                      '__main__': "__all__ = ['main']", '_modidx': 'd = {}'}.items():
        (tmp_path/f'{name}.py').write_text(src)
    assert build_docs.public_names(tmp_path) == {'a': ['x', 'y']}


def _missing(why:str):
    "Skip for want of `why`, except in CI, where the browser tests must run"
    if os.environ.get('CI'): pytest.fail(why)
    pytest.skip(why)


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def base_url(tmp_path_factory):
    "The site, freshly built with warnings as errors, served on a free port of 127.0.0.1"
    try: import mkdocs, mkdocs_jupyter, mkdocstrings  # noqa: F401
    except ImportError: _missing('the docs packages are not installed: pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp('docs')
    subprocess.run([sys.executable, str(root/'tools'/'build_docs.py'), '--out', str(out)], check=True, timeout=180)
    server = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(out/'site')))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try: yield f'http://127.0.0.1:{server.server_port}/'
    finally:
        server.shutdown()
        server.server_close()


class Page:
    "A Chromium tab driven over the DevTools protocol through the websocket `ws`"
    def __init__(self, ws): self.ws, self.n = ws, 0

    def call(self, method:str, **params):
        "Send a DevTools command and return its result"
        self.n += 1
        self.ws.send(json.dumps({'id': self.n, 'method': method, 'params': params}))
        while (msg := json.loads(self.ws.recv(timeout=30))).get('id') != self.n: pass
        if 'error' in msg: raise RuntimeError(msg['error'])
        return msg['result']

    def js(self, expr:str):
        "The value of the JavaScript `expr` in the page"
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True)
        if 'exceptionDetails' in r: raise RuntimeError(r['exceptionDetails'])
        return r['result'].get('value')

    def wait(self, expr:str, timeout:float=20):
        "Wait until `expr` is truthy in the page, and return it"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if v := self.js(expr): return v
            except RuntimeError as e: v = e  # the page was between documents
            if time.monotonic() > deadline: raise AssertionError(f'never true in the page: {expr} (last: {v!r})')
            time.sleep(0.1)

    def open(self, url:str):
        "Load `url` and wait until it is complete"
        self.call('Page.navigate', url=url)
        self.wait(f'location.href == {json.dumps(url)} && document.readyState == "complete"')


@pytest.fixture(scope='module')
def page(tmp_path_factory):
    "A tab of a headless Chromium, stopped at the end even when a test failed"
    exe = shutil.which('chromium')
    if not exe: _missing('no chromium on PATH: apt-get install chromium')
    from websockets.sync.client import connect
    profile = tmp_path_factory.mktemp('chromium')
    proc = subprocess.Popen([exe, '--headless', '--no-sandbox', '--disable-gpu', '--remote-debugging-port=0',
                             f'--user-data-dir={profile}', '--window-size=1280,900', 'about:blank'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file, deadline = profile/'DevToolsActivePort', time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, 'chromium did not start'
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10))
        with connect(next(t['webSocketDebuggerUrl'] for t in targets if t['type'] == 'page'), max_size=None) as ws:
            yield Page(ws)
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _nb(name:str) -> dict: return build_docs.read_nb(root/'nbs'/name)


def test_home_page_is_the_index_notebook(page, base_url):
    page.open(base_url)
    title = build_docs.title(_nb('index.ipynb'), '')
    assert page.js('document.title').startswith(title)
    assert page.js('document.querySelector("article h1").firstChild.textContent.trim()') == title
    nav = page.js('[...document.querySelectorAll(".md-nav__link")].map(a => a.textContent.trim())')
    for path in (root/'nbs').glob('*.ipynb'): assert build_docs.title(_nb(path.name), path.stem) in nav


def test_code_cell_shows_highlighted_python_and_its_saved_output(page, base_url):
    page.open(base_url)
    cell = next(c for c in _nb('index.ipynb')['cells'] if c['cell_type'] == 'code' and c['outputs'][:1]
                and c['outputs'][0]['output_type'] == 'stream')
    code, output = cell['source'].splitlines()[0], ''.join(cell['outputs'][0]['text']).split()[0]
    shown = page.js('[...document.querySelectorAll(".jp-CodeCell")].map(c => c.innerText)')
    assert any(code in text and output in text for text in shown)
    assert page.js('document.querySelectorAll(".jp-CodeCell .highlight-ipynb span.kn").length') > 0  # keywords: Python


def test_outputs_notebook_shows_its_png_without_directives(page, base_url):
    nb = next(p for p in sorted((root/'nbs').glob('*.ipynb')) if '"image/png"' in p.read_text())
    page.open(f'{base_url}{build_docs.page_name(nb)}.html')
    page.wait('[...document.querySelectorAll(".jp-RenderedImage img")].some(i => '
              'i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0 && i.src.startsWith("data:image/png"))')
    assert page.js('document.querySelectorAll(".jp-RenderedHTML b, .jp-RenderedHTML img").length') > 0  # HTML output, rendered
    assert page.js('document.querySelectorAll(".jp-CodeCell").length') > 0
    assert page.js('!document.body.innerText.includes("#|")')


def test_api_page_documents_the_client(page, base_url):
    import conkernel
    cls = conkernel.ConKernelClient
    page.open(f'{base_url}api/{cls.__module__.split(".")[-1]}.html')
    path = f'{cls.__module__}.{cls.__name__}'
    assert page.js(f'!!document.getElementById("{path}")')
    assert page.js(f'!!document.getElementById("{path}.run")')  # a method added by @patch in another module
    assert cls.__doc__.replace('`', '') in page.js('document.querySelector("article").innerText')  # rendered markdown


def test_search_finds_pages(page, base_url):
    page.open(base_url)
    page.js('document.querySelector(".md-search__input").focus()')
    page.call('Input.insertText', text='subshell')
    results = page.wait('[...document.querySelectorAll(".md-search-result__item a")].map(a => [a.href, a.innerText])')
    assert all(href.startswith(base_url) for href, _ in results)
    assert any('subshell' in text.lower() for _, text in results)


def test_each_modules_docs_link_is_served(base_url):
    "The `Docs:` line nbdev writes atop each module points at a page of the site"
    urls = [url for path in sorted((root/'conkernel').glob('*.py')) for url in re.findall(r'Docs: (\S+?\.md)', path.read_text()[:500])]
    assert len(urls) > 10
    for url in urls:
        local = base_url + url.split('/conkernel/', 1)[1]
        with urllib.request.urlopen(local, timeout=10) as r: assert r.status == 200 and r.read(), local
