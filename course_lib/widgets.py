"""Interactive figures that still show something in the static book.

A book page is a static HTML file: an ipywidgets slider there has no kernel
behind it, and whatever it would draw is blank. ``interactive_figure`` draws
the figure once at the controls' starting values (the static figure the book
and a headless run keep), then, under it, shows the controls; moving one in a
live notebook redraws the figure below the controls. The saliency viewer and
the blur slider of later chapters use the same helper.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets
from IPython.display import display


def interactive_figure(draw: Callable[..., None], **controls: widgets.ValueWidget) -> widgets.VBox:
    """Call ``draw(**values)`` at the controls' values now, and again whenever one of them changes.

    Args:
        draw: draws (and shows) one figure from keyword arguments named like the controls.
        controls: ipywidgets value controls, e.g. ``eps=widgets.FloatSlider(...)``.

    Returns the displayed ``VBox`` of the controls and the live output area.
    """
    if not controls:
        raise ValueError("interactive_figure needs at least one control, e.g. eps=widgets.FloatSlider(...)")
    not_controls = [name for name, c in controls.items() if not isinstance(c, widgets.ValueWidget)]
    if not_controls:
        raise TypeError(f"{', '.join(not_controls)} must be ipywidgets value controls (sliders, dropdowns, ...)")

    def values() -> dict:
        return {name: control.value for name, control in controls.items()}

    draw(**values())  # the static figure, at the starting values
    output = widgets.Output()

    def redraw(_change=None):
        output.clear_output(wait=True)
        with output:
            draw(**values())

    for control in controls.values():
        control.observe(redraw, names="value")
    hint = widgets.HTML("<i>Live notebook only: move a control to redraw the figure below.</i>")
    box = widgets.VBox([hint, *controls.values(), output])
    display(box)
    return box
