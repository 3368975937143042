"""A fast path for fhir_core's check that no list of complex elements holds a null.

Why: ``FHIRAbstractModel.reject_null_complex_elements`` runs before every model
instance is built -- each resource and each complex element the element cache
(:mod:`validators.model_cache`) has not seen -- and walks *all* the fields of the
class each time, asking per field whether it is a list of complex elements.
That was a seventh of validating the Synthea bundles (0.94 s -> 0.80 s here).

What: which fields of a class are lists of complex elements is fixed, so it is
worked out once per class; a value then only needs those few keys looked at. When
one holds a null, the library's own function runs and raises its own errors, so
every verdict and message is the library's. Pydantic's compiled schemas hold the
function object itself, so its code is swapped in place; :func:`install` checks
the pinned fhir-core still has that function as expected and otherwise leaves it.
"""

from __future__ import annotations

import logging
import types

log = logging.getLogger(__name__)
_state = {"installed": False}
_EXPECTED_ARGS = ("cls", "data")


def install() -> bool:
    """Swap the fast path into fhir_core once; True when it is active."""
    if _state["installed"]:
        return True
    try:
        from fhir_core import fhirabstractmodel as module

        function = module.FHIRAbstractModel.__dict__["reject_null_complex_elements"].__func__
        code = function.__code__
        assert code.co_varnames[: code.co_argcount] == _EXPECTED_ARGS
        assert function.__closure__ is None and callable(module.is_list_type)
    except (ImportError, KeyError, AttributeError, AssertionError):
        log.warning("fhir_core changed: checking null list items the library's way")
        return False
    library = types.FunctionType(code, function.__globals__, function.__name__)
    plans: dict[type, tuple[tuple[str, str | None], ...]] = {}

    def complex_lists(cls) -> tuple[tuple[str, str | None], ...]:
        found = plans.get(cls)
        if found is None:
            found = plans[cls] = tuple(
                (name, field.alias)
                for name, field in cls.model_fields.items()
                # the library's own test of which fields it checks
                if module.is_list_type(field)
                and not module.is_primitive_type(field)
                and not name.endswith("__ext")
            )
        return found

    # The swapped-in code reads these two from the library module's globals.
    module._phrx_complex_lists = complex_lists
    module._phrx_reject_nulls = library
    function.__code__ = _fast_path.__code__
    _state["installed"] = True
    return True


def _fast_path(cls, data):  # runs with fhir_core.fhirabstractmodel's globals
    if not isinstance(data, dict):
        return data
    for name, alias in _phrx_complex_lists(cls):  # noqa: F821 (set by install)
        value = data.get(alias if alias and alias in data else name)
        if isinstance(value, list) and None in value:
            return _phrx_reject_nulls(cls, data)  # noqa: F821 (the library's errors)
    return data


def is_installed() -> bool:
    return _state["installed"]
