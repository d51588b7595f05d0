"""The ``python`` step: a function written by the hospital's IT team, for what the declarative
operations cannot say.

``{type: python, function: "lab_fixes:normalise_units"}`` loads ``lab_fixes.py`` from
``engine.plugins_dir`` when the configuration loads (a missing file or function, a syntax
error, a function that does not take one argument: an error at the step's line). The module is
read from its file each time the configuration loads, so a reload picks up changes. The
function receives an :class:`~engine.transforms.user.message_api.HL7Message` and edits it in
place. An exception dead-letters the message with the function's name, the exception class and
the line in the plugin, never the exception's text (it may quote the message).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from engine.hl7v2.reader import Message
from engine.transforms.user.errors import PythonStepFailed, PythonStepTimeout
from engine.transforms.user.message_api import HL7Message
from engine.transforms.user.watchdog import WATCHDOG, Interrupted, TooLong

UserFunction = Callable[[HL7Message], object]

#: ``engine.plugins_dir`` while ``channels.yaml`` is validated (set by ChannelsFile).
PLUGINS_DIR: ContextVar[Path | None] = ContextVar("plugins_dir", default=None)


class PythonStep(BaseModel):
    """Run ``module:function`` from ``engine.plugins_dir`` on each message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["python"]
    function: str = Field(
        pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$",
        description='"module:function", the module a .py file in engine.plugins_dir',
    )
    timeout_seconds: float = Field(
        default=1.0, gt=0, le=60, description="a call running longer dead-letters the message"
    )
    _plugins: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _loads(self) -> Self:
        plugins = PLUGINS_DIR.get()
        if plugins is None:
            raise ValueError("a python step needs engine.plugins_dir (the folder of its module)")
        load_function(plugins, self.function)
        self._plugins = plugins
        return self

    def build(self) -> Callable[[Message], Message]:
        fn = load_function(self._plugins, self.function)
        return PythonRunner(self.function, fn, self.timeout_seconds, self._plugins)


class PythonRunner:
    """A loaded function: a message in, the message it left out."""

    def __init__(self, name: str, fn: UserFunction, limit: float, plugins: Path) -> None:
        self.name = name
        self.fn = fn
        self.limit = limit
        self.plugins = str(plugins.resolve())

    def __call__(self, msg: Message) -> Message:
        api = HL7Message(msg)
        try:
            WATCHDOG.call(self.fn, api, self.limit, self.name)
        except (Interrupted, TooLong) as exc:
            ran = f"ran {exc.elapsed:.3f} s" if isinstance(exc, TooLong) else "was interrupted"
            raise PythonStepTimeout(
                f"python step {self.name} {ran}, past its limit of {self.limit:g} s"
            ) from None
        except Exception as exc:  # the user's code: any exception is a dead letter
            raise PythonStepFailed(
                f"python step {self.name} raised {type(exc).__name__} at {self._where(exc)}"
            ) from None  # no chained traceback: its frames hold the message
        return api.message()

    def _where(self, exc: BaseException) -> str:
        """The innermost line of the plugin's code in the traceback (else the innermost)."""
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if f.filename.startswith(self.plugins)] or frames
        if not ours:
            return "an unknown line"
        last = ours[-1]
        return f"{Path(last.filename).name}:{last.lineno}"


def load_function(plugins: Path, spec: str) -> UserFunction:
    """Read the module's file afresh and return its function (``ValueError`` saying what is
    wrong, for the configuration's error report)."""
    module_name, func_name = spec.split(":")
    path = plugins / (module_name.replace(".", "/") + ".py")
    if not path.is_file():
        raise ValueError(f"no module {module_name!r}: {path} does not exist")
    name = f"aiguillage_plugins.{module_name}"
    found = importlib.util.spec_from_file_location(name, path)
    if found is None or found.loader is None:
        raise ValueError(f"{path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    try:
        found.loader.exec_module(module)
    except SyntaxError as exc:
        raise ValueError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        line = traceback.extract_tb(exc.__traceback__)[-1].lineno
        raise ValueError(f"{path}: loading it raised {type(exc).__name__} (line {line})") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ValueError(f"{path} has no function {func_name!r}")
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        raise ValueError(f"{spec} must take one argument, the message") from None
    except ValueError:
        pass  # a builtin without a signature: trusted
    function: UserFunction = fn
    return function
