"""Shared hypothesis settings and strategies for the fuzz tests.

``GCAUTH_FUZZ_EXAMPLES`` raises the number of cases per property for long runs (the normal
test run uses 200)::

    GCAUTH_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/fuzz -q --hypothesis-show-statistics
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from gcauth._http import Headers, HttpResponse
from gcauth.exceptions import GCAuthError

EXAMPLES = int(os.environ.get("GCAUTH_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def only_gcauth_errors(call: Callable[[], Any]) -> Any:
    """Run ``call``: a result or a :class:`GCAuthError` is fine; anything else fails the case."""
    try:
        return call()
    except GCAuthError:
        return None


# -- JSON ----------------------------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**400),
                                                                    max_value=10**400)
           | st.floats() | st.text())
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


def dumps(value: Any) -> bytes:
    """JSON as a hostile server would send it (NaN and Infinity allowed, like Python's)."""
    return json.dumps(value).encode()


#: Deep nesting: a credential file or a reply that is valid JSON yet hostile to parsers.
DEEP_JSON = [b"[" * 5000, b'{"a":' * 3000, b"[" * 3000 + b"]" * 3000]

raw_json_bytes = st.one_of(
    st.binary(max_size=300),
    json_values.map(dumps),
    st.sampled_from(DEEP_JSON),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b" ", b"null", b"[]", b'"x"', b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00",
                     b"NaN", b"1e999", b'{"a": 1e999}', b"{" + b" " * 10 + b"}"]),
)

# -- HTTP replies --------------------------------------------------------------------------
statuses = st.sampled_from([200, 201, 204, 301, 302, 307, 400, 401, 403, 404, 408, 429, 500,
                            502, 503, 504]) | st.integers(min_value=100, max_value=599)
header_values = st.text(max_size=30) | st.sampled_from(
    ["Google", "google", "0", "1", "-1", "nan", "inf", "-inf", "1e999", "3.5",
     "Wed, 21 Oct 2015 07:28:00 GMT", "application/json"])
headers = st.dictionaries(
    st.sampled_from(["content-type", "retry-after", "metadata-flavor", "x-other"]),
    header_values, max_size=4)
#: A field of a token or error reply: the right type, or anything.
field_values = (json_values | st.sampled_from(
    [0, -1, 3600, 1e308, 1e999, float("nan"), float("-inf"), 10**30, 10**400, "3600", "nan",
     "inf", "1e999", "", " ", "ya29.x", True]))
token_dicts = st.fixed_dictionaries({}, optional={
    name: field_values for name in (
        "access_token", "expires_in", "token_type", "refresh_token", "scope", "id_token",
        "error", "error_description", "error_uri", "email", "scopes", "aliases")})
bodies = st.one_of(raw_json_bytes, token_dicts.map(dumps),
                   st.fixed_dictionaries({"error": st.fixed_dictionaries({}, optional={
                       "status": field_values, "code": field_values,
                       "message": field_values})}).map(dumps))


@st.composite
def responses(draw: st.DrawFn) -> HttpResponse:
    return HttpResponse(draw(statuses), Headers(draw(headers)), draw(bodies))


@st.composite
def good_token_responses(draw: st.DrawFn) -> HttpResponse:
    """A 200 with the metadata header and a token-shaped body: deeper into the parsers."""
    return HttpResponse(200, Headers({"metadata-flavor": "Google",
                                      "content-type": "application/json"}),
                        dumps(draw(token_dicts)))


reply_sequences = st.lists(responses() | good_token_responses(), min_size=1, max_size=6)
