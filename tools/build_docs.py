"""Build the documentation site from the notebooks in nbs/ and the docstrings of conkernel's public names.

Nothing is hard-coded: every notebook in nbs/ becomes a page (sorted by file name, titled by its first `# `
heading, index.ipynb the home page) and every module with a non-empty `__all__` an API page. The notebooks
are not run: their saved outputs are shown. The generated config and pages go to _docs/, the site to
_docs/site/; `mkdocs build --strict` makes any warning an error.

    python tools/build_docs.py [--nbs DIR] [--out DIR]

Why these tools: nbdev-docs needs Quarto, which cannot be installed from PyPI (its package downloads a binary
at build time). mkdocs-material with mkdocs-jupyter installs from PyPI alone and builds offline; mkdocs-jupyter
renders a notebook with nbconvert, so saved outputs (images, HTML) show exactly as Jupyter stores them and
nothing is executed; mkdocstrings reads the docstrings; material's search runs in the browser, with no
server. Sphinx with myst-nb would do too, with more configuration. Material for MkDocs announces critical
fixes until its end of life in May 2027: all of its config is in `config` below.
"""
import argparse, ast, json, os, re, shutil, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
PKG = 'conkernel'
DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)')  # an nbdev cell directive: `#| export`, `#| hide`, ...
HIDDEN = {'hide', 'default_exp'}  # cells with these directives are not shown


def directives(cell) -> set:
    "The names of the nbdev directives of a code `cell`"
    return {m[1] for line in cell['source'].splitlines() if (m := DIRECTIVE.match(line))}


def clean(nb:dict) -> dict:
    "`nb` as a reader sees it: hidden cells dropped, directive lines stripped, its code marked as Python"
    cells = []
    for cell in nb['cells']:
        if cell['cell_type'] == 'code':
            if directives(cell) & HIDDEN: continue
            cell['source'] = '\n'.join(l for l in cell['source'].splitlines() if not DIRECTIVE.match(l)).strip('\n')
        cells.append(cell)
    nb['cells'] = cells
    nb['metadata']['language_info'] = {'name': 'python'}  # nbdev-clean strips it; the highlighter reads it
    return nb


def read_nb(path:Path) -> dict:
    "The notebook at `path`, each cell's source as one string"
    nb = json.loads(path.read_text())
    for cell in nb['cells']:
        if isinstance(cell['source'], list): cell['source'] = ''.join(cell['source'])
    return nb


def title(nb:dict, default:str) -> str:
    "The text of the notebook's first `# ` markdown heading, or `default`"
    for cell in nb['cells']:
        if cell['cell_type'] != 'markdown': continue
        for line in cell['source'].splitlines():
            if line.startswith('# '): return line[2:].strip()
    return default


def public_names(lib:Path) -> dict:
    "Each module of `lib` that has public names (its `__all__`, read without importing it): {module: names}"
    mods = {}
    for path in sorted(lib.glob('*.py')):
        if path.stem.startswith('_'): continue  # __init__, __main__, _modidx
        names = []
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in node.targets):
                names = ast.literal_eval(node.value)
        if names: mods[path.stem] = names
    return mods


def page_name(path:Path) -> str:
    "A notebook's page name, as nbdev names it in each module's `Docs:` link: its file name without the number"
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', path.stem.lower())


def write_sources(nbs:Path, lib:Path, src:Path) -> list:
    "Write the pages to `src`; return the site's nav"
    if src.exists(): shutil.rmtree(src)
    (src/'api').mkdir(parents=True)
    if (nbs/'images').is_dir(): shutil.copytree(nbs/'images', src/'images')  # figures the notebooks show
    home, notebooks = None, []
    for path in sorted(nbs.glob('*.ipynb')):
        nb = clean(read_nb(path))
        name = page_name(path)
        (src/f'{name}.ipynb').write_text(json.dumps(nb, indent=1))
        page = {title(nb, path.stem): f'{name}.ipynb'}
        if path.stem == 'index': home = page
        else: notebooks.append(page)
    if home is None: sys.exit(f"no index.ipynb in {nbs}: it is the home page")
    api = []
    for mod, names in public_names(lib).items():
        members = ''.join(f'\n        - {n}' for n in names)
        (src/'api'/f'{mod}.md').write_text(f'::: {PKG}.{mod}\n    options:\n      members:{members}\n')
        api.append({f'{PKG}.{mod}': f'api/{mod}.md'})
    return [home, {'Notebooks': notebooks}, {'API reference': api}]


def write_markdown(src:Path, site:Path):
    "Each page as plain markdown too, at name.html.md: where the `Docs:` line of each module points"
    from nbconvert import MarkdownExporter
    import nbformat
    for path in src.glob('*.ipynb'):
        text = MarkdownExporter().from_notebook_node(nbformat.reads(path.read_text(), as_version=4))[0]
        (site/f'{path.stem}.html.md').write_text(text)


def config(nav:list) -> dict:
    "The mkdocs config for the generated pages in src/ beside it"
    return {
        'site_name': PKG,
        'site_url': 'https://conkernel.github.io/conkernel/',
        'repo_url': 'https://github.com/conkernel/conkernel',
        'docs_dir': 'src', 'site_dir': 'site',
        'use_directory_urls': False,  # name.html, the address each module's `Docs:` link gives (as name.html.md)
        'theme': {'name': 'material', 'features': ['navigation.sections', 'search.highlight']},
        'markdown_extensions': ['toc', 'admonition', 'pymdownx.highlight', 'pymdownx.superfences'],
        'plugins': [
            'search',
            {'mkdocs-jupyter': {'include': ['*.ipynb'], 'execute': False, 'no_prompt': True, 'cache': False}},
            {'mkdocstrings': {'handlers': {'python': {
                'paths': [str(root)],
                'options': {'show_root_heading': True, 'show_source': False, 'heading_level': 1,
                            'members_order': 'source', 'filters': ['!^_'], 'merge_init_into_class': True,
                            'force_inspection': True,  # sees the methods that fastcore's @patch adds
                            'extensions': [f"{root/'tools'/'griffe_patched.py'}:PatchedMembers"]}}}}},
        ],
        'nav': nav,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--nbs', type=Path, default=root/'nbs', help='the notebooks (default: nbs/)')
    p.add_argument('--out', type=Path, default=root/'_docs', help='generated config, pages and site (default: _docs/)')
    args = p.parse_args()
    out = args.out.resolve()
    nav = write_sources(args.nbs.resolve(), root/PKG, out/'src')
    # JSON is YAML: mkdocs reads this config as it is
    (out/'mkdocs.yml').write_text(json.dumps(config(nav), indent=1))
    build = [sys.executable, '-m', 'mkdocs', 'build', '--strict', '--quiet', '-f', str(out/'mkdocs.yml')]
    if subprocess.run(build, env=os.environ | {'NO_MKDOCS_2_WARNING': '1'}).returncode:
        sys.exit('the docs build failed: its warnings are above')
    write_markdown(out/'src', out/'site')
    print(f"site: {out/'site'/'index.html'}")


if __name__ == '__main__': main()
