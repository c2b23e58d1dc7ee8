"""Opening a notebook outside the repository (Colab, Binder): its install cell and the repository URL.

Every notebook's second code cell, right after the parameters, installs the kit
when ``course_lib`` is not importable (a fresh Colab runtime) and does nothing
otherwise. The URL it installs from is the one the book's launch buttons point
at (``repository.url`` in ``_config.yml``); ``set_repository`` changes both at
once (``course set-repository URL``), and a test checks that they agree.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

from .io import atomic_write_text
from .runner import REPO_ROOT, list_notebooks

INSTALL_MARKER = "# Colab or a fresh environment: install the course kit when it is missing."
_URL_LINE = re.compile(r"^(  url: ).*$", re.MULTILINE)
_KIT_LINE = re.compile(r'^KIT = ".*"$', re.MULTILINE)


def install_cell_source(url: str) -> str:
    """The install cell's code for repository ``url`` (lines fit the book's 80-column code)."""
    return (f"{INSTALL_MARKER}\n"
            "import importlib.util\nimport subprocess\nimport sys\n\n"
            f'KIT = "{url}"\n'
            'if importlib.util.find_spec("course_lib") is None:\n'
            '    pip = [sys.executable, "-m", "pip", "install", "-q"]\n'
            '    subprocess.run([*pip, f"git+{KIT}"], check=True)')


def repository_url(repo_root=REPO_ROOT) -> str:
    """``repository.url`` of the book's ``_config.yml``."""
    import yaml

    config = yaml.safe_load((Path(repo_root) / "_config.yml").read_text())
    return config["repository"]["url"]


def install_cell(notebook: nbformat.NotebookNode):
    """The notebook's install cell (the code cell that starts with ``INSTALL_MARKER``), or None."""
    return next((c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(INSTALL_MARKER)),
                None)


def set_repository(url: str, repo_root=REPO_ROOT) -> list[Path]:
    """Point the launch buttons and every notebook's install cell at ``url``; return the files changed."""
    if not re.fullmatch(r"https://[^\s\"']+", url):
        raise ValueError(f"repository URL must start with https:// and hold no spaces or quotes, got {url!r}; "
                         "for example https://github.com/your-org/course-kit")
    root = Path(repo_root)
    config_path = root / "_config.yml"
    config = config_path.read_text()
    if not _URL_LINE.search(config):
        raise ValueError(f"{config_path} has no repository url line ('  url: ...') to set")
    atomic_write_text(config_path, _URL_LINE.sub(lambda m: m.group(1) + url, config, count=1))
    changed = [config_path]
    for path in list_notebooks(root / "notebooks"):
        notebook = nbformat.read(path, as_version=4)
        cell = install_cell(notebook)
        if cell is None:
            raise ValueError(f"{path.name} has no install cell (a code cell starting with {INSTALL_MARKER!r})")
        cell.source = _KIT_LINE.sub(f'KIT = "{url}"', cell.source)
        atomic_write_text(path, nbformat.writes(notebook) + "\n")
        changed.append(path)
    return changed
