"""Rule registry: model rules run at every flush, whoever writes (web form, REST API, CLI, importer).

    @rule(Student)
    def class_in_same_school(student, session): ...      # once per new or changed row

    @flush_rule
    def class_capacity(session, new_or_changed): ...      # once per flush, for set-wise checks

A rule raises app.errors.RuleError; the flush, and so the whole request or import, is rolled back.
"""
from collections import defaultdict

from sqlalchemy import event, inspect

_RULES: dict[type, list] = defaultdict(list)
_FLUSH_RULES: list = []


def rule(model):
    def register(fn):
        _RULES[model].append(fn)
        return fn
    return register


def flush_rule(fn):
    _FLUSH_RULES.append(fn)
    return fn


def is_new(obj) -> bool:
    return inspect(obj).pending or inspect(obj).transient


def changed(obj, *fields) -> bool:
    """True for a new row, or when any of `fields` changes in this flush."""
    if is_new(obj):
        return True
    state = inspect(obj)
    return any(state.attrs[f].history.has_changes() for f in fields)


def original(obj, field):
    """The value before this flush's change (the current value for new rows)."""
    hist = inspect(obj).attrs[field].history
    return hist.deleted[0] if hist.deleted else getattr(obj, field)


def _run(session, flush_context, instances):
    touched = [obj for obj in list(session.new) + list(session.dirty)
               if obj in session.new or session.is_modified(obj)]
    with session.no_autoflush:
        for obj in touched:
            for fn in _RULES.get(type(obj), ()):
                fn(obj, session)
        for fn in _FLUSH_RULES:
            fn(session, touched)


def install(session_factory) -> None:
    event.listen(session_factory, "before_flush", _run)
