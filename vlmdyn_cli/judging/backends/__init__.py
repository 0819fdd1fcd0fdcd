"""The judge backend registry (DESIGN.md convention 4: registries, not if-chains).

Backends are registered by id as "module:Class" strings and imported only when
used, so a missing optional dependency fails with an install hint instead of
breaking unrelated commands. Every class follows backends/base.py:
``Class.options_for(spec, runtime)`` checks the spec's [options] overlaid with
command-line values, ``Class(spec, options, context)`` builds it.
"""

from __future__ import annotations

import importlib

from vlmdyn_cli.errors import BadInput, MissingDependency, did_you_mean

BACKENDS: dict[str, str] = {
    "openai": "vlmdyn_cli.judging.backends.openai_backend:OpenAIBackend",
    "llama-cpp": "vlmdyn_cli.judging.backends.llama_cpp_backend:LlamaCppBackend",
    "transformers": "vlmdyn_cli.judging.backends.transformers_backend:TransformersBackend",
    "rules": "vlmdyn_cli.judging.rules:RulesBackend",
    "cascade": "vlmdyn_cli.judging.backends.cascade:CascadeBackend",
    "fitted": "vlmdyn_cli.judging.backends.fitted_backend:FittedBackend",
}

# What to install when a backend's optional dependency is missing.
INSTALL_HINTS: dict[str, str] = {
    "openai": "pip install 'openai>=1.40'",
    "llama-cpp": "pip install 'vlmdyn[local]'",
    "transformers": "pip install torch transformers (and bitsandbytes for 4-bit on CUDA)",
    "rules": "pip install vlmdyn",
    "cascade": "pip install vlmdyn",
    "fitted": "pip install vlmdyn",
}


def backend_class(backend_id: str):
    if backend_id not in BACKENDS:
        raise BadInput(f"unknown judge backend '{backend_id}'{did_you_mean(backend_id, BACKENDS)}; "
                       f"valid backends: {', '.join(sorted(BACKENDS))}")
    module, _, cls = BACKENDS[backend_id].partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        if missing == module or (missing and missing.startswith("vlmdyn_cli")):
            raise BadInput(f"judge backend '{backend_id}' is not available in this installation "
                           f"({module} cannot be imported: {exc})") from exc
        raise MissingDependency(missing, INSTALL_HINTS.get(backend_id, f"pip install {missing}"),
                                f"the '{backend_id}' judge backend") from exc
    return getattr(mod, cls)


def check_installed(spec) -> None:
    """MissingDependency (exit 2, naming the install command) when a package the judge needs is missing."""
    backend_class(spec.backend).check_installed(spec)


def create_backend(spec, runtime: dict | None = None, context=None):
    """The backend a spec names, its options checked (``runtime``: command-line values over the spec's)."""
    cls = backend_class(spec.backend)
    return cls(spec, cls.options_for(spec, runtime), context)
