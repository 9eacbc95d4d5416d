"""The REST API against its own OpenAPI spec (schemathesis): whatever the generated input, no answer is a server
error, every answer's status code is one the document declares, and every answer's body matches the declared schema.

`make test` runs it derandomised (the same examples every run) as a school registrar, on each database the suite
runs on. `.ci/run` runs it once more with random data as every role on PostgreSQL (XUEJI_FUZZ_RANDOM=1, bounded by
XUEJI_FUZZ_EXAMPLES per operation), where out-of-range ids, NUL bytes and lone surrogates meet a strict server."""
import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (response_schema_conformance,  # noqa: E402
                                               status_code_conformance)

from tests.conftest import api_headers  # noqa: E402

SKIP = ("/security/", "/account/password", "/menu/", "/_openapi")
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
RANDOM = os.environ.get("XUEJI_FUZZ_RANDOM") == "1"
ROLES = ["admin", "county_a_clerk", "county_a_reviewer", "school_a1_clerk", "school_a1_leader"]


def _dialect(app) -> str:
    return app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0].split("+", 1)[0]


def _roles(app) -> list[str]:
    return ROLES if RANDOM and _dialect(app) == "postgresql" else ["school_a1_clerk"]


def fuzz(app, username: str, max_examples: int, derandomize: bool) -> tuple[int, list[str]]:
    headers = api_headers(app.test_client(), username)
    schema = schemathesis.openapi.from_wsgi("/api/v1/_openapi", app, headers=headers)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if any(part in operation.path for part in SKIP):
            continue
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None, derandomize=derandomize)
        def run(case):
            case.call_and_validate(headers=headers, checks=CHECKS)
        try:
            run()
        except BaseException as exc:             # collect every operation's failure, then report them together
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{username} {operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    return operations, failures


@pytest.mark.parametrize("role", range(len(ROLES)))
def test_no_server_errors_anywhere_in_the_api(app, world, role):
    roles = _roles(app)
    if role >= len(roles):
        pytest.skip("one role unless XUEJI_FUZZ_RANDOM=1 on PostgreSQL")
    random_run = RANDOM and _dialect(app) == "postgresql"
    examples = int(os.environ.get("XUEJI_FUZZ_EXAMPLES", "25")) if random_run else 6
    operations, failures = fuzz(app, roles[role], examples, derandomize=not random_run)
    assert operations > 20
    assert not failures, "\n".join(failures)
