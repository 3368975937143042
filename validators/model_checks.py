"""Fast paths for fhir_core's two checks after every model instance is built.

Why: ``FHIRAbstractModel.validate_after_model_construction`` runs for each
resource and each complex element the element cache (:mod:`validators.model_cache`)
has not seen, and calls two methods that rebuild per-class facts on every call:
``_validate_one_of_many`` (choice types ``value[x]``: at most one, one if required)
asks the generated class for its choice groups and reads pydantic's deprecated
``model_fields`` property twice per group; ``_validate_required_primitive_elements``
(a required primitive may be absent only with an extension) rebuilds the class's
whole name-to-alias map. Replaced, validating a Synthea resource took 93 -> 80 us.

What: those facts are fixed per class, so they are read once per class (from the
first instance) and kept. An instance whose values pass the plain test -- no
choice group with two values or a required one empty, no required primitive
absent -- passes; otherwise the library's own method runs and decides, so every
refusal and message is the library's. Both are looked up on the instance when
called, so they are replaced as class attributes; :func:`install` checks that the
pinned fhir-core defines them as expected and otherwise leaves them alone.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
_state = {"installed": False}
_library: dict[str, object] = {}
# class -> ((field names of one choice group, required?), ...)
_choice_plans: dict[type, tuple[tuple[tuple[str, ...], bool], ...]] = {}
# class -> field names of its required primitive elements
_required_plans: dict[type, tuple[str, ...]] = {}


def install() -> bool:
    """Put the fast paths in place once; True when they are active."""
    if _state["installed"]:
        return True
    try:
        from fhir_core.fhirabstractmodel import FHIRAbstractModel

        names = ("_validate_one_of_many", "_validate_required_primitive_elements")
        originals = {name: FHIRAbstractModel.__dict__[name] for name in names}
        for name in ("get_one_of_many_fields", "get_required_fields", "get_alias_mapping"):
            assert callable(getattr(FHIRAbstractModel, name))
    except (ImportError, KeyError, AssertionError):
        log.warning("fhir_core changed: checking choices and required elements its way")
        return False
    _library.update(originals)
    FHIRAbstractModel._validate_one_of_many = _choices_checked
    FHIRAbstractModel._validate_required_primitive_elements = _required_checked
    _state["installed"] = True
    return True


def is_installed() -> bool:
    return _state["installed"]


def _choice_plan(model) -> tuple[tuple[tuple[str, ...], bool], ...]:
    cls = type(model)
    plan = _choice_plans.get(cls)
    if plan is None:
        fields = cls.model_fields
        plan = _choice_plans[cls] = tuple(
            (
                tuple(group),
                fields[group[0]].json_schema_extra["one_of_many_required"] is True,
            )
            for group in model.get_one_of_many_fields().values()
        )
    return plan


def _required_plan(model) -> tuple[str, ...]:
    cls = type(model)
    plan = _required_plans.get(cls)
    if plan is None:
        aliases = model.get_alias_mapping()
        plan = _required_plans[cls] = tuple(
            aliases[name] for name, _ext in model.get_required_fields()
        )
    return plan


def _choices_checked(self) -> None:
    for group, required in _choice_plan(self):
        present = 0
        for name in group:
            if getattr(self, name, None) is not None:
                present += 1
        if present > 1 or (required and present == 0):
            return _library["_validate_one_of_many"](self)  # raises the library's error
    return None


def _required_checked(self) -> None:
    for name in _required_plan(self):
        if getattr(self, name, None) is None:
            # absent: allowed only with an extension, which the library judges
            return _library["_validate_required_primitive_elements"](self)
    return None
