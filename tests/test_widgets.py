"""Interactive figures draw a static figure first, and redraw on every change of a control."""
from __future__ import annotations

import ipywidgets as widgets
import nbformat
import pytest

from course_lib.runner import list_notebooks
from course_lib.widgets import interactive_figure

from .conftest import REPO


def test_the_static_figure_is_drawn_at_the_starting_values_then_redrawn_on_change():
    calls = []
    eps = widgets.FloatSlider(value=0.1, min=0, max=0.3)
    index = widgets.IntSlider(value=2, min=0, max=9)
    box = interactive_figure(lambda **kw: calls.append(kw), eps=eps, index=index)
    assert calls == [{"eps": 0.1, "index": 2}]
    eps.value = 0.25
    index.value = 7
    assert calls[1:] == [{"eps": 0.25, "index": 2}, {"eps": 0.25, "index": 7}]
    assert eps in box.children and index in box.children


def test_bad_controls_are_named():
    with pytest.raises(ValueError, match="at least one control"):
        interactive_figure(lambda: None)
    with pytest.raises(TypeError, match="eps must be ipywidgets value controls"):
        interactive_figure(lambda eps: None, eps=0.1)


@pytest.mark.parametrize("path", list_notebooks(REPO / "notebooks"), ids=lambda p: p.stem)
def test_every_widget_in_a_notebook_comes_with_a_static_figure(path):
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    for raw in ("widgets.interact(", "widgets.interactive(", "interact_manual(", "@interact"):
        assert raw not in code, f"{path.name} uses {raw}: use course_lib.widgets.interactive_figure instead"
