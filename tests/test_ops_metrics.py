"""``/metrics``: Prometheus text with requests, latency, errors, pool gauges, failed logins and
active sessions, increasing as requests come in."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GraphQLClient, MadeUser

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_requests_latency_and_errors(
    client: httpx.AsyncClient, gql: GraphQLClient, user_token: str
) -> None:
    before = await _scrape(client)
    for _ in range(3):
        assert "errors" not in await gql("query Me { me { id } }", token=user_token)
    assert "errors" in await gql("query Me { me { id } }", token="not-a-jwt")
    after = await _scrape(client)

    requests = "gql_api_graphql_requests_total"
    ok = {"operation": "Me", "operation_type": "query", "outcome": "success"}
    failed = {**ok, "outcome": "error"}
    assert _value(after, requests, **ok) - _value(before, requests, **ok) == 3
    assert _value(after, requests, **failed) - _value(before, requests, **failed) == 1
    latency = "gql_api_graphql_request_duration_seconds_count"
    labels = {"operation": "Me", "operation_type": "query"}
    assert _value(after, latency, **labels) - _value(before, latency, **labels) == 4
    bucket = "gql_api_graphql_request_duration_seconds_bucket"
    assert _value(after, bucket, **labels, le="+Inf") == _value(after, latency, **labels)
    errors = "gql_api_graphql_errors_total"
    assert (
        _value(after, errors, code="UNAUTHENTICATED")
        - _value(before, errors, code="UNAUTHENTICATED")
        == 1
    )


async def test_metric_labels_stay_bounded(client: httpx.AsyncClient, gql: GraphQLClient) -> None:
    before = await _scrape(client)
    await gql("{ health { status } }")  # anonymous operation
    await gql("query { nope", expect_status=None)  # does not parse
    await gql("{ noSuchField }", expect_status=None)  # does not validate
    after = await _scrape(client)
    requests = "gql_api_graphql_requests_total"

    def grew(**labels: str) -> float:
        return _value(after, requests, **labels) - _value(before, requests, **labels)

    assert grew(operation="anonymous", operation_type="query", outcome="success") == 1
    assert grew(operation="invalid", operation_type="unknown", outcome="error") == 1
    assert grew(operation="anonymous", operation_type="query", outcome="error") == 1
    errors = "gql_api_graphql_errors_total"
    for code in ("GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"):
        assert _value(after, errors, code=code) - _value(before, errors, code=code) == 1


async def test_pool_gauges_and_active_sessions(
    client: httpx.AsyncClient, gql: GraphQLClient, user_token: str, admin_token: str
) -> None:
    assert "errors" not in await gql("{ me { id } }", token=user_token)
    samples = await _scrape(client)
    assert _value(samples, "gql_api_active_sessions") == 2  # the user's and the admin's
    assert _value(samples, "gql_api_db_pool_max_open_connections") == 20
    open_ = _value(samples, "gql_api_db_pool_connections", state="open")
    assert open_ >= 1
    assert open_ == _value(samples, "gql_api_db_pool_connections", state="in_use") + _value(
        samples, "gql_api_db_pool_connections", state="idle"
    )
    for reason in ("max_idle", "max_idle_time", "max_lifetime"):
        assert ("gql_api_db_pool_closed_connections", frozenset({("reason", reason)})) in samples
    assert ("gql_api_db_pool_wait_count", frozenset()) in samples


async def test_failed_logins_are_counted(
    client: httpx.AsyncClient, gql: GraphQLClient, user: MadeUser
) -> None:
    login = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }"
    before = await _scrape(client)
    body = await gql(login, {"i": {"email": user.email, "password": "wrong password 123"}})
    assert body.get("errors"), body
    body = await gql(login, {"i": {"email": "nobody@example.com", "password": "whatever 123"}})
    assert body.get("errors"), body
    after = await _scrape(client)
    name = "gql_api_failed_logins_total"
    assert _value(after, name) - _value(before, name) == 2
