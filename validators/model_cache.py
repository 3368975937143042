"""Memoised validation of repeated complex elements for the ``fhir.resources`` models.

Why: ``fhir_core`` validates every complex element (each Coding, CodeableConcept,
Reference, Money …) through a Python-level call into that element's model, and
those calls are most of the cost of validating a resource (≈0.2 ms for an
Observation, ≈1 ms for an ExplanationOfBenefit). Real data repeats the same
elements over and over: the same LOINC Coding in every vital sign, the same
``subject`` Reference in every resource of a patient's Bundle, the same claim
adjudication categories. In the Synthea bundles 85% of those calls see a value
the process validated before.

What: the validation of a complex element depends only on its model class and its
JSON value, so a *successful* result is memoised under ``(class, JSON text)``. The
text is orjson's serialisation, injective on parsed JSON (``1`` vs ``1.0`` vs
``true`` and string escapes all differ; NaN and Infinity, which it would write as
``null``, are refused when JSON is parsed -- by the node's JSON parser);
values JSON cannot hold (datetimes, subclasses, integers beyond 64 bits) are
validated uncached. It is twice as fast as ``repr``, which was a sixth of the cost.
Failures are never cached, so every error is reported exactly as the library
reports it, with its path. The top-level resource is always validated. Bounded:
small elements only (``MAX_KEY_CHARS``) and at most ``MAX_ENTRIES`` per process;
oldest entries go first.

The hook is ``fhir_core.types.FhirBase.fhir_model_validator`` of the pinned
``fhir.resources``/``fhir-core`` versions; :func:`install` checks it is there
and otherwise leaves the library untouched (:func:`is_installed` says which).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import OrderedDict

import orjson

MAX_ENTRIES = 4096
MAX_KEY_CHARS = 1024

log = logging.getLogger(__name__)
_state = {"installed": False}
# Oldest first, evicted in O(1): removing a plain dict's first key (``next(iter(d))``)
# walks over every slot deleted before it, up to a thousand at this size.
_cache: OrderedDict[tuple[type, bytes], object] = OrderedDict()
# Raise (TypeError) on what JSON cannot hold instead of writing it as a string.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
_stats = {"hits": 0, "misses": 0}


def install() -> bool:
    """Wrap fhir_core's per-element validator once; True when the cache is active."""
    if _state["installed"]:
        return True
    try:
        from fhir_core import fhirabstractmodel, utils
        from fhir_core.types import FhirBase

        original = FhirBase.__dict__["fhir_model_validator"].__func__
        list_type = utils.is_list_type.__wrapped__
        primitive_type = utils.is_primitive_type.__wrapped__
        model_klass = FhirBase.__dict__["get_model_klass"].__func__.__wrapped__
    except (ImportError, KeyError, AttributeError):
        log.warning("fhir_core changed: validating without the element cache")
        return False

    def fhir_model_validator(cls, value, model_klass):
        if type(value) is not dict:
            return original(cls, value, model_klass)
        try:
            text = orjson.dumps(value, option=_STRICT)
        except TypeError:  # not plain JSON: no reliable key
            return original(cls, value, model_klass)
        if len(text) > MAX_KEY_CHARS:
            return original(cls, value, model_klass)
        key = (model_klass, text)
        found = _cache.get(key)
        if found is not None:
            _stats["hits"] += 1
            return found
        _stats["misses"] += 1
        result = original(cls, value, model_klass)  # raises on invalid: not cached
        _remember(key, result)
        return result

    FhirBase.fhir_model_validator = classmethod(fhir_model_validator)
    # Each model validation asks these two of every field of its class; the
    # library's own lru_cache(maxsize=1024) is far smaller than the number of
    # fields of the R4B models, so it thrashes. Both are pure functions of the field.
    fhirabstractmodel.is_list_type = functools.cache(list_type)
    fhirabstractmodel.is_primitive_type = functools.cache(primitive_type)
    # Likewise the element type -> model class look-up (an import_string) made for
    # every complex element validated: lru_cache(maxsize=128) over 682 element types.
    FhirBase.get_model_klass = classmethod(functools.cache(model_klass))
    _state["installed"] = True
    return True


def is_installed() -> bool:
    return _state["installed"]


def _remember(key: tuple[type, bytes], result: object) -> None:
    if len(_cache) >= MAX_ENTRIES:
        with contextlib.suppress(KeyError):  # another thread emptied it first
            _cache.popitem(last=False)
    _cache[key] = result


def stats() -> dict[str, int]:
    """Hits, misses and current size (for tests and benchmarks)."""
    return {**_stats, "size": len(_cache)}


def clear() -> None:
    _cache.clear()
    _stats.update(hits=0, misses=0)
