"""Write README.md from nbs/index.ipynb (Quarto, which nbdev-readme needs, cannot be installed here).
With --check, exit 1 if README.md differs from what the notebook gives."""
import sys
from pathlib import Path

import nbformat
from nbconvert import MarkdownExporter

root = Path(__file__).resolve().parent.parent
nb = nbformat.read(root/'nbs'/'index.ipynb', as_version=4)
nb.metadata['language_info'] = {'name': 'python'}  # nbdev-clean strips it; it names the code blocks' language
readme = MarkdownExporter().from_notebook_node(nb)[0].rstrip() + '\n'
readme = readme.replace('](images/', '](nbs/images/')  # the notebook's images, seen from the repository's root
if '--check' not in sys.argv: (root/'README.md').write_text(readme)
elif (root/'README.md').read_text() != readme: sys.exit("README.md differs from nbs/index.ipynb: run python tools/make_readme.py")
