"""The one registry type: decorator and lazy registration, the kind check, duplicates, lookup errors."""

import pytest

from objlab.registry import Registry, RegistryError


class Base:
    pass


class Good(Base):
    pass


def test_decorator_and_lookup_keep_registration_order():
    registry = Registry("widget", base=Base)

    @registry.register("second")
    class Second(Base):
        pass

    registry.register("first", Good)
    assert registry.names() == ["second", "first"] and "first" in registry and len(registry) == 2
    assert registry.get("first") is Good and registry.get("second") is Second


def test_lazy_target_is_imported_and_checked_on_first_get():
    registry = Registry("widget", base=Base)
    registry.register("later", target=f"{__name__}:Good")
    assert registry.names() == ["later"]
    assert registry.get("later") is Good
    registry.register("wrong", target="json:dumps")
    with pytest.raises(RegistryError, match=r"widget 'wrong': expected an instance of Base, got dumps"):
        registry.get("wrong")
    registry.register("missing", target="no_such_module_here:thing")
    with pytest.raises(RegistryError, match=r"cannot import 'no_such_module_here'"):
        registry.get("missing")


def test_wrong_kind_duplicates_and_unknown_names_are_named_errors():
    registry = Registry("widget", base=Base)
    with pytest.raises(RegistryError, match=r"widget 'x': expected a subclass of Base, got int"):
        registry.register("x", int)
    registry.register("g", Good)
    registry.register("g", Good)  # the same object again is harmless
    with pytest.raises(RegistryError, match=r"widget 'g' is already registered \(Good\); pass replace=True"):
        registry.register("g", Base)
    registry.register("g", Base, replace=True)
    assert registry.get("g") is Base
    with pytest.raises(RegistryError, match=r"unknown widget 'h' \(registered: g\)"):
        registry.get("h")
    registry.unregister("g")
    assert registry.names() == []


def test_functions_registry_checks_callables_and_loads_builtins_once():
    loads = []
    registry = Registry("decoder", load_builtins=lambda: loads.append(1) or registry.register("upper", str.upper))
    assert registry.get("upper")("a") == "A" and registry.names() == ["upper"] and loads == [1]
    with pytest.raises(RegistryError, match=r"decoder 'n': expected a callable, got int"):
        registry.register("n", 3)


def test_objlab_registries_are_this_type():
    from objlab.data.tasks import TASKS
    from objlab.evaluate.axes.attack_transforms import DECODERS, ENCODERS
    from objlab.objectives.registry import OBJECTIVES
    from objlab.scoring.catalog import SCORERS

    assert OBJECTIVES.names() == ["sft", "dpo", "orpo", "kl", "cft", "ip", "aware"]
    assert {"gsm8k", "instruction"} <= set(TASKS.names())
    assert {"classifier", "string_matching", "strongreject_rubric", "objlab_rubric", "python"} <= set(SCORERS.names())
    assert ENCODERS.names() == ["base64", "rot_13", "disemvowel"] and DECODERS.names() == ["base64", "json_list"]
