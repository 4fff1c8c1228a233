"""The response cache as HTTP sees it: conditional requests (If-None-Match →
304), content codings (br, zstd, gzip) that decode to exactly the identity
bytes, one strong ETag per coding, no compression of small bodies, the
Surrogate-Key, Vary and Cache-Control headers, and HEAD."""

import re
import uuid
from types import SimpleNamespace

import pytest

from cache_support import (
    ALL_ENCODINGS, HIT, MISS_STORED, assert_cache_status, decoder, invalidate, is_miss,
    item_path, published_item, raw_head, wait_warmed,
)
from strata_support import assert_status

ETAG_RE = re.compile(r'^"([0-9a-f]{16})(?:-(br|zstd|gzip))?"$')
IDENTITY = {"Accept-Encoding": "identity"}


def long_text(words=600):
    """Text that compresses well but is not one repeated byte."""
    vocab = ["cache", "strata", "content", "latency", "shard", "sieve", "flight", "tag",
             "epoch", "fence", "brotli", "gzip", "zstd", "loop", "worker", "beacon"]
    return " ".join(f"{vocab[(i * 7) % len(vocab)]}{i % 13}" for i in range(words))


@pytest.fixture(scope="module")
def content(server, client, tokens):
    wait_warmed(server)
    adm = tokens["admin"]
    big = published_item(client, adm, title="Big " + uuid.uuid4().hex[:6], body=long_text(),
                         excerpt="an item well above one kilobyte")
    small = published_item(client, adm, title="Tiny", body="x")
    big_other = published_item(client, adm, title="Big two", body=long_text(700))
    return SimpleNamespace(big=big, small=small, big_other=big_other, admin=adm)


def identity(client, path):
    r = client.get(path, headers=IDENTITY)
    assert_status(r, 200)
    assert "content-encoding" not in r.headers, f"identity was asked for: {r.headers}"
    return r


def etag_of(resp):
    etag = resp.headers.get("etag", "")
    assert ETAG_RE.match(etag), f"ETag should be a strong \"<16 hex>[-coding]\", got {etag!r}"
    return etag


# ---- conditional requests ---------------------------------------------------------------

def assert_not_modified(resp, etag):
    assert resp.status == 304, f"expected 304, got {resp.status}: {resp.body[:300]!r}"
    assert resp.body == b"", f"a 304 has no body, got {resp.body[:200]!r}"
    assert resp.headers.get("etag") == etag, f"304 should repeat the ETag {etag}: {resp.headers}"
    assert "public" in resp.headers.get("cache-control", ""), f"304 keeps Cache-Control: {resp.headers}"
    assert resp.headers.get("vary", "").lower() == "accept-encoding", f"304 keeps Vary: {resp.headers}"


def test_if_none_match_with_the_exact_etag_is_304_without_a_body(client, content):
    path = item_path(content.big)
    etag = etag_of(identity(client, path))
    r = client.get(path, headers={**IDENTITY, "If-None-Match": etag})
    assert_not_modified(r, etag)


def test_if_none_match_list_holding_the_etag_is_304(client, content):
    path = item_path(content.big)
    etag = etag_of(identity(client, path))
    r = client.get(path, headers={**IDENTITY, "If-None-Match": f'"a", {etag}'})
    assert_not_modified(r, etag)


def test_if_none_match_star_is_304(client, content):
    path = item_path(content.big)
    etag = etag_of(identity(client, path))
    r = client.get(path, headers={**IDENTITY, "If-None-Match": "*"})
    assert_not_modified(r, etag)


def test_if_none_match_weak_form_of_the_etag_is_304(client, content):
    path = item_path(content.big)
    etag = etag_of(identity(client, path))
    r = client.get(path, headers={**IDENTITY, "If-None-Match": f"W/{etag}"})
    assert_not_modified(r, etag)


def test_if_none_match_with_another_etag_is_200_with_the_body(client, content):
    path = item_path(content.big)
    full = identity(client, path)
    r = client.get(path, headers={**IDENTITY, "If-None-Match": '"0123456789abcdef", "nope"'})
    assert_status(r, 200)
    assert r.body == full.body


def test_a_gzip_etag_does_not_validate_the_brotli_copy(client, content):
    path = item_path(content.big)
    gz = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip", gz.headers
    r = client.get(path, headers={"Accept-Encoding": "br", "If-None-Match": etag_of(gz)})
    assert_status(r, 200)
    assert r.headers.get("content-encoding") == "br"
    assert r.body, "the brotli copy is sent in full"


def test_revalidation_after_the_entry_was_dropped_is_still_304(client, content):
    """Unchanged content has an unchanged ETag even when it is filled anew."""
    path = item_path(content.big_other)
    etag = etag_of(identity(client, path))
    invalidate(client, content.admin, keys=[path])
    r = client.get(path, headers={**IDENTITY, "If-None-Match": etag})
    assert is_miss(r), f"the entry was invalidated: expected a miss, got {r.headers.get('cache-status')!r}"
    assert_not_modified(r, etag)


# ---- content codings ---------------------------------------------------------------------

TARGETS = {
    "item": lambda c: item_path(c.big),
    "list": lambda c: "/v1/main/content?limit=30",
}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("encoding", ["br", "gzip", "zstd"])
def test_each_coding_decodes_to_exactly_the_identity_bytes(client, content, encoding, target):
    decode = decoder(encoding)
    path = TARGETS[target](content)
    plain = identity(client, path)
    assert len(plain.body) >= 1024, f"{path} should be at least 1 KB to be compressed, is {len(plain.body)}"
    r = client.get(path, headers={"Accept-Encoding": encoding})
    assert_status(r, 200)
    assert r.headers.get("content-encoding") == encoding, (
        f"Accept-Encoding: {encoding} should get {encoding}, got {r.headers.get('content-encoding')!r}")
    assert r.headers.get("vary", "").lower() == "accept-encoding"
    assert len(r.body) < len(plain.body), "a coded variant is only sent when smaller"
    assert decode(r.body) == plain.body
    assert r.headers.get("content-type") == plain.headers.get("content-type")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_coding_has_its_own_etag(client, content, target):
    path = TARGETS[target](content)
    base = etag_of(identity(client, path))
    m = ETAG_RE.match(base)
    assert m.group(2) is None, f"the identity ETag has no coding suffix: {base}"
    seen = {base}
    for encoding in ("br", "gzip", "zstd"):
        r = client.get(path, headers={"Accept-Encoding": encoding})
        assert r.headers.get("content-encoding") == encoding
        etag = etag_of(r)
        assert etag == f'"{m.group(1)}-{encoding}"', f"{encoding} ETag: {etag} (identity {base})"
        seen.add(etag)
    assert len(seen) == 4


@pytest.mark.parametrize("accept, expected", [
    ("gzip", "gzip"),
    ("br;q=0, zstd;q=0, gzip", "gzip"),
    ("gzip;q=0.5, zstd;q=0.9", "zstd"),
    ("identity", None),
    ("br;q=0, gzip;q=0, zstd;q=0", None),
])
def test_accept_encoding_picks_an_acceptable_coding(client, content, accept, expected):
    r = client.get(item_path(content.big), headers={"Accept-Encoding": accept})
    assert_status(r, 200)
    assert r.headers.get("content-encoding") == expected, (
        f"Accept-Encoding {accept!r}: expected {expected}, got {r.headers.get('content-encoding')!r}")


def test_small_item_is_never_compressed(client, content):
    path = item_path(content.small)
    plain = identity(client, path)
    assert len(plain.body) < 1024, f"the small item should be under 1 KB, is {len(plain.body)}"
    r = client.get(path, headers={"Accept-Encoding": ALL_ENCODINGS})
    assert_status(r, 200)
    assert "content-encoding" not in r.headers, f"{len(plain.body)} bytes were compressed: {r.headers}"
    assert r.body == plain.body
    assert r.headers.get("etag") == plain.headers.get("etag")


def test_small_categories_list_is_never_compressed(client, content):
    plain = identity(client, "/v1/main/categories")
    if len(plain.body) >= 1024:
        pytest.skip(f"/v1/main/categories is {len(plain.body)} bytes here: not a small body")
    r = client.get("/v1/main/categories", headers={"Accept-Encoding": ALL_ENCODINGS})
    assert_status(r, 200)
    assert "content-encoding" not in r.headers, r.headers
    assert r.body == plain.body


# ---- headers ------------------------------------------------------------------------------

def test_surrogate_key_names_the_item_and_the_site(client, content):
    item = content.big
    r = identity(client, item_path(item))
    keys = r.headers.get("surrogate-key", "").split()
    assert f"main:item:{item['id']}" in keys, f"Surrogate-Key: {keys}"
    assert "main:all" in keys, f"Surrogate-Key: {keys}"


def test_surrogate_key_of_a_filtered_list_names_its_filters(client, content):
    typ = content.big["type"]
    r = identity(client, f"/v1/main/content?type={typ}")
    keys = r.headers.get("surrogate-key", "").split()
    for tag in ("main:all", "main:lists", f"main:type:{typ}"):
        assert tag in keys, f"Surrogate-Key of a list filtered by type lacks {tag}: {keys}"


def test_cacheable_response_says_how_long_it_may_be_kept(client, content):
    r = identity(client, item_path(content.big))
    cc = {d.split("=")[0].strip(): d.split("=")[1].strip() if "=" in d else True
          for d in r.headers.get("cache-control", "").split(",")}
    assert cc.get("public") is True, f"Cache-Control: {r.headers.get('cache-control')}"
    for directive in ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"):
        assert directive in cc and cc[directive].isdigit(), (
            f"Cache-Control lacks {directive}: {r.headers.get('cache-control')}")
    assert int(cc["max-age"]) <= int(cc["s-maxage"]), "browsers never keep it longer than shared caches"
    cdn = r.headers.get("cdn-cache-control", "")
    assert f"max-age={cc['s-maxage']}" in cdn, f"CDN-Cache-Control: {cdn!r}"
    assert r.headers.get("vary", "").lower() == "accept-encoding"
    assert "total;dur=" in r.headers.get("server-timing", ""), r.headers.get("server-timing")


def test_public_reads_say_miss_then_hit(client, content):
    item = published_item(client, content.admin, body="fresh")
    path = item_path(item)
    invalidate(client, content.admin, keys=[path])
    first = client.get(path)
    second = client.get(path)
    assert_cache_status(first, MISS_STORED, what="first read after invalidation")
    assert_cache_status(second, HIT, what="second read")
    assert first.body == second.body


# ---- HEAD ----------------------------------------------------------------------------------

def test_head_of_a_cached_item_sends_headers_and_no_body(server, client, content):
    path = item_path(content.big)
    full = identity(client, path)
    status, headers, rest = raw_head(server.port, path, "Accept-Encoding: identity\r\n")
    assert status == 200
    assert rest == b"", f"HEAD must send no body, got {len(rest)} bytes: {rest[:100]!r}"
    assert headers.get("etag") == full.headers.get("etag")
    assert headers.get("content-length") == str(len(full.body))
    assert headers.get("cache-status", "").startswith("strata;"), headers


def test_head_of_an_uncached_item_sends_headers_and_no_body(server, client, content):
    item = published_item(client, content.admin, body=long_text(300))
    path = item_path(item)
    invalidate(client, content.admin, keys=[path])
    status, headers, rest = raw_head(server.port, path, "Accept-Encoding: gzip\r\n")
    assert status == 200
    assert "fwd=miss" in headers.get("cache-status", ""), f"expected a miss: {headers}"
    assert rest == b"", f"HEAD must send no body, got {len(rest)} bytes: {rest[:100]!r}"
    assert headers.get("content-encoding") == "gzip"
    full = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert headers.get("content-length") == str(len(full.body))
    assert headers.get("etag") == full.headers.get("etag")


def test_head_of_a_missing_item_is_404_without_a_body(server, content):
    status, headers, rest = raw_head(server.port, "/v1/main/content/987654321")
    assert status == 404
    assert rest == b""
