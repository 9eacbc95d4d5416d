"""Rule registry: model rules run at every flush, whoever writes (web form, REST API, CLI, importer).

    @rule(Student)
    def class_in_same_school(student, session): ...

A rule raises app.errors.RuleError; the flush, and so the whole request or import, is rolled back.
"""
from collections import defaultdict

from sqlalchemy import event

_RULES: dict[type, list] = defaultdict(list)


def rule(model):
    def register(fn):
        _RULES[model].append(fn)
        return fn
    return register


def _run(session, flush_context, instances):
    for obj in list(session.new) + list(session.dirty):
        fns = _RULES.get(type(obj))
        if not fns or (obj in session.dirty and not session.is_modified(obj)):
            continue
        with session.no_autoflush:
            for fn in fns:
                fn(obj, session)


def install(session_factory) -> None:
    event.listen(session_factory, "before_flush", _run)
