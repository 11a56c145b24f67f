"""schemathesis against the live server's /openapi.json: no 5xx, every status and body as documented.

Bounded (a few dozen examples per operation, no shrinking) so that it finishes in seconds on two cores.
The operations are driven with hypothesis directly: schemathesis' own pytest plugin does not run under
this pytest version.
"""

from __future__ import annotations

import itertools

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from service_helpers import LiveServer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 20
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def test_api_conforms_to_its_schema(server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /detect", "POST /detect/batch", "POST /visualize", "GET /v1/model", "GET /healthz"} <= labels
    calls: dict[int, int] = {}
    for operation, mode in itertools.product(operations, MODES):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
            calls[response.status_code] = calls.get(response.status_code, 0) + 1

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to break in an operation without parameters
    assert sum(calls.values()) >= len(operations) * 10, calls
    assert calls.get(200, 0) > 0 and sum(n for status, n in calls.items() if 400 <= status < 500) > 0, calls
    print("schemathesis statuses:", dict(sorted(calls.items())))
