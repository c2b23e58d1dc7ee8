"""course_lib: the thin library behind the course notebooks.

Modules hold what more than one notebook needs and what must be tested:
datasets (`course_lib.data`), models with their zoo recipes (`course_lib.models`),
the one training engine, its plug-ins and the model zoo (`course_lib.train`),
attacks (`course_lib.attacks`),
saliency maps and their sanity checks (`course_lib.saliency`), evaluation
helpers and the notebook runner. Narrative, experiments and figures live in
the notebooks. `course_lib/README.md` describes the layers and how a chapter
adds a model, an objective, a defence or a saliency method.
"""

__version__ = "0.1.0"
