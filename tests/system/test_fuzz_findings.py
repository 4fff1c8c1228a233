"""What the fuzz harnesses (tests/fuzz, docs/fuzzing.md) found, checked
end to end against a real server.

A JSON body with a bad escape next to a multibyte character: jansson
reports the error quoting the bytes around it cut inside the character,
and the problem built from that detail was refused by jansson in turn —
the public Web Vitals beacon and every JSON write answered 500 with an
empty body, no problem, no request id (found by fuzz_input).
"""

from strata_support import assert_problem

# {"title":" \u00e<U+01D4>"}: the escape is cut, the character after it is whole
BAD_ESCAPE = b'{"title":" \\u00e\xc7\x94"}'


def test_bad_escape_in_a_beacon_is_a_400_problem(client):
    r = client.post("/api/performance/metrics", body=BAD_ESCAPE, content_type="text/plain",
                    headers={"X-Forwarded-For": "198.51.200.7"})
    p = assert_problem(r, 400)
    assert "invalid escape" in p["detail"], p


def test_bad_escape_in_a_create_is_a_400_problem(client, tokens):
    r = client.post("/v1/main/content", body=BAD_ESCAPE, content_type="application/json", token=tokens["write"])
    p = assert_problem(r, 400)
    assert "invalid escape" in p["detail"], p
