"""The unit of work: every use case is one service — a function `(session, actor, input…)` in app/ decorated with
@service — that checks authority, validates, writes, and owns the one commit.

- Success commits once; any exception (a RuleError above all) rolls the whole use case back, so a refused request,
  import or approval leaves the database as it was, and files kept with app.uploads.keep go with it.
- A service called by another service (an admission list files its review request; 毕业 files the county's
  request) joins the caller's transaction: only the outermost one commits or rolls back, so services never
  call each other's commits.
- The three faces only parse, call and render: the web turns a RuleError into a flash (views.base.refused), the
  REST API into {code, message} at its status (views.base.rest_safe), the CLI into its message and exit code.

Superset's commands/ are the model (validate, then run, in one transaction); a decorator keeps the functions
callable as they are.
"""
import functools

_DEPTH = "xueji_service_depth"            # the unit-of-work's own bookkeeping, not a flag other code reads


def service(fn):
    """Make `fn(session, …)` a use case owning its transaction (see the module docstring)."""
    @functools.wraps(fn)
    def run(session, *args, **kwargs):
        depth = session.info.get(_DEPTH, 0)
        session.info[_DEPTH] = depth + 1
        try:
            result = fn(session, *args, **kwargs)
            if depth == 0:
                session.commit()
            return result
        except BaseException:
            if depth == 0:
                session.rollback()
            raise
        finally:
            session.info[_DEPTH] = depth
    run.__wrapped_service__ = fn
    return run


def in_service(session) -> bool:
    """Whether a use case is running on this session (helpers that must not commit on their own ask it)."""
    return bool(session.info.get(_DEPTH))
