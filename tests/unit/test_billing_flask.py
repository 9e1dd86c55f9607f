"""BillingFlask remembers which functions are plain, so Flask's per-hook ensure_sync costs a
dict lookup; an `async def` is still handed to Flask's own handling."""

from __future__ import annotations

import pytest
from flask import Flask

from billing import BillingFlask


def plain() -> int:
    return 1


async def coroutine() -> int:
    return 2


class View:
    def get(self) -> int:
        return 3

    async def post(self) -> int:
        return 4


def test_plain_functions_and_methods_come_back_as_they_are_and_are_remembered_once():
    app = BillingFlask(__name__)
    view, other = View(), View()
    assert app.ensure_sync(plain) is plain
    bound = view.get
    assert app.ensure_sync(bound) is bound
    assert app.ensure_sync(other.get)() == 3  # a method made afresh: the same memory entry
    assert app._plain == {plain: True, View.get: True}


def _outcome(ensure_sync, func) -> object:
    try:
        return ensure_sync(func)()
    except Exception as error:  # without asgiref installed, Flask refuses a coroutine so
        return type(error)


def test_a_coroutine_goes_to_flasks_own_handling():
    app, reference = BillingFlask(__name__), Flask(__name__)
    for func in (coroutine, View().post):
        expected = _outcome(reference.ensure_sync, func)
        assert _outcome(app.ensure_sync, func) == expected
        assert _outcome(app.ensure_sync, func) == expected  # and again, now remembered
    assert app._plain == {coroutine: False, View.post: False}


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch):
    app = BillingFlask(__name__)
    monkeypatch.setattr(BillingFlask, "_SYNC_MEMORY", 3)
    made = [eval(f"lambda: {i}") for i in range(10)]  # functions made one by one, as per request
    for func in made:
        assert app.ensure_sync(func) is func
    assert len(app._plain) == 3
