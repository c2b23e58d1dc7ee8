"""The repository URL of the launch buttons and of the notebooks' install cells, set in one place."""
from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from course_lib.launch import install_cell, install_cell_source, repository_url, set_repository

from .conftest import REPO


@pytest.fixture
def repo_copy(tmp_path):
    shutil.copy(REPO / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    return tmp_path


def test_set_repository_changes_the_buttons_and_every_install_cell(repo_copy):
    url = "https://github.com/teacher/robustness-course"
    changed = set_repository(url, repo_copy)
    assert repository_url(repo_copy) == url
    notebooks = sorted((repo_copy / "notebooks").glob("*.ipynb"))
    assert len(changed) == 1 + len(notebooks)
    for path in notebooks:
        cell = install_cell(nbformat.read(path, as_version=4))
        assert cell.source == install_cell_source(url)
    config = (repo_copy / "_config.yml").read_text()
    assert config.count(url) == 1 and "colab_url" in config  # the rest of the file is kept


def test_set_repository_rejects_a_bad_url(repo_copy):
    before = (repo_copy / "_config.yml").read_text()
    with pytest.raises(ValueError, match="must start with https://"):
        set_repository("git@github.com:teacher/kit.git", repo_copy)
    assert (repo_copy / "_config.yml").read_text() == before


def test_the_install_cell_does_nothing_when_the_kit_is_importable(tmp_path):
    # run it with pip replaced by a command that would fail: it must not be called
    source = install_cell_source("https://example.invalid/kit").replace('"pip"', '"no-such-module"')
    result = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    missing = source.replace('find_spec("course_lib")', 'find_spec("no_such_kit_module")')
    result = subprocess.run([sys.executable, "-c", missing], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0 and "no-such-module" in result.stderr  # the install was attempted
