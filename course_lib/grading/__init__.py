"""Graded assignments: nbgrader's format and gradebook, with the isolation it lacks.

Layers (none of these modules imports torch; the CLI's ``grade``, ``assign``
and ``feedback`` start fast):

- ``record``: ``record(name, value)`` / ``recorded(name)``, how a test cell
  hands the values a student's code returned to the checks, as plain data.
- ``cells``: split each test cell into its *probe* (runs after the student's
  code, in the student's sandbox) and its *check* (runs in a fresh process
  that never executes student code); rebuild a submission from the source.
- ``sandbox``: run one command with time, memory, output, process and
  network limits, as an unprivileged user, with the course folder hidden.
- ``execute``: the notebook runner used inside the sandbox (nbclient, with
  per-cell timeouts, an output cap and every failure turned into a status).
- ``batch``: grade every submission of an assignment with N workers,
  resumably, into nbgrader's gradebook and ``grades.csv``.
- ``course``: ``course assign`` / ``course feedback`` over nbgrader.
"""
