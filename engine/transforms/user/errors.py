"""Errors of user-written transform steps (kinds of :class:`engine.errors.TransformError`:
permanent, dead-lettered at once with the stage ``transform``)."""

from __future__ import annotations

from engine.errors import TransformError


class UnmappedCode(TransformError):
    """A code-table ``map`` met a code the table lacks (policy ``dead_letter``): add the row,
    reload and replay."""

    code = "unmapped_code"


class PythonStepFailed(TransformError):
    """A Python step raised: the reason names the function, the exception class and the line."""

    code = "python_step_failed"


class PythonStepTimeout(TransformError):
    """A Python step ran past its time limit."""

    code = "python_step_timeout"
