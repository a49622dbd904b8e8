"""The exception tree drawn in ``twin.errors`` is the tree the classes form."""

from __future__ import annotations

import re

import twin.errors as errors


def _drawn() -> dict[str, str]:
    """Each class in the docstring's drawing, mapped to the class it hangs under."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^(\s*)(?:[│ ]*[├└]── )?([A-Z]\w+)\b", line)
        if not m or not line.strip().startswith(("├", "└", "│", "Twinstream")):
            continue
        depth = len(line) - len(line.lstrip(" │├└─"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[m.group(2)] = stack[-1][1]
        stack.append((depth, m.group(2)))
    return parents


def test_the_drawing_names_every_class_under_its_real_parent() -> None:
    drawn = _drawn()
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.TwinstreamError)
    }
    assert set(drawn) == set(classes) - {"TwinstreamError"}
    for name, parent in drawn.items():
        assert classes[name].__bases__ == (classes[parent],), name


def test_an_unreachable_store_is_not_a_refusal() -> None:
    """A sink splits a *refused* batch into dead letters; an unreachable store must be retried."""
    assert not issubclass(errors.StoreUnavailable, errors.StoreRejected)
    assert issubclass(errors.StoreUnavailable, errors.StoreError)
    assert issubclass(errors.StoreRejected, errors.StoreError)
