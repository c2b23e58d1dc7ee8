"""course_lib: the thin library behind the course notebooks.

Modules hold what more than one notebook needs and what must be tested:
datasets (`course_lib.data`), models (`course_lib.models`), the trainer and
adversarial training (`course_lib.train`), attacks (`course_lib.attacks`),
saliency maps and their sanity checks (`course_lib.saliency`), evaluation
helpers and the notebook runner. Narrative, experiments and figures live in
the notebooks.
"""

__version__ = "0.1.0"
