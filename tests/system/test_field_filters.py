"""Filters on custom fields (issue 16): `GET /v1/{site}/content?type=T&
fields.NAME[OP]=VALUE` on fields an operator declared indexed for the site
and type, typed by the declared kind; an undeclared field or a value of
the wrong kind is a 400; unknown parameters that look like filters are
refused; filtered pages are cached under their canonical filters and
dropped by the write that changes a field; the plan walks the declared
index (SQLite and PostgreSQL)."""

import re
import sqlite3
import subprocess

import pytest

from cache_support import HIT, MISS_STORED, assert_cache_status, cache_status
from strata_support import (
    DB_BACKEND, assert_json, assert_problem, assert_status, create_item, publish, save, uniq,
)

COLORS = ["red", "green", "blue"]
N = 30


def fields_of(i):
    """Item i's custom fields: a number, a bool, a text and a real."""
    return {"rank": i, "featured": i % 3 == 0, "color": COLORS[i % 3], "price": i * 1.5}


@pytest.fixture(scope="module")
def seeded(server, tokens):
    """A type of its own with N published items of known fields, a tag on
    the even ones, two items whose fields are of another kind, and four
    declared fields (three through the admin route, one through the CLI)."""
    client, admin = server.client(), tokens["admin"]
    typ, tag = uniq("ff"), uniq("even")
    ids = {}
    for i in range(N):
        tags = [tag] if i % 2 == 0 else []
        draft = create_item(client, admin, type=typ, slug=f"item-{i}", title=f"Item {i:02d}", fields=fields_of(i),
                            tags=tags)
        publish(client, admin, draft["id"])
        ids[draft["id"]] = i
    # a rank that is a string and a featured that is a number: never matched as their declared kinds
    odd = create_item(client, admin, type=typ, slug="odd", title="Odd one",
                      fields={"rank": "7", "featured": 1, "color": 3})
    publish(client, admin, odd["id"])
    for field, kind in (("rank", "number"), ("featured", "bool"), ("color", "text")):
        r = client.post("/v1/main/field-indexes", json={"type": typ, "field": field, "kind": kind}, token=admin)
        assert_json(r, 201)
    server.deployment.cli("fields", "index", "--site", "main", "--type", typ, "--field", "price", "--kind", "number",
                          "--db", server.deployment.db).check_returncode()
    return {"type": typ, "tag": tag, "ids": ids, "odd": odd["id"]}


def walk(client, query, limit=4):
    """Every page of a list query (limit per page); the ids in order."""
    got, cursor = [], None
    for _ in range(40):
        path = f"/v1/main/content?{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = assert_json(client.get(path))
        got += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return got
    raise AssertionError(f"{query}: more than 40 pages")


def expected(seeded, keep):
    return {item_id for item_id, i in seeded["ids"].items() if keep(i, fields_of(i))}


CASES = [
    ("fields.rank=7", lambda i, f: f["rank"] == 7),
    ("fields.rank[eq]=7.0", lambda i, f: f["rank"] == 7),
    ("fields.rank[gt]=20", lambda i, f: f["rank"] > 20),
    ("fields.rank[gte]=20", lambda i, f: f["rank"] >= 20),
    ("fields.rank[lt]=5", lambda i, f: f["rank"] < 5),
    ("fields.rank[lte]=5", lambda i, f: f["rank"] <= 5),
    ("fields.rank[gt]=3&fields.rank[lte]=9", lambda i, f: 3 < f["rank"] <= 9),
    ("fields.rank[in]=1,2,17,99", lambda i, f: f["rank"] in (1, 2, 17)),
    ("fields.rank%5Bin%5D=" + ",".join(str(k) for k in range(0, 40, 2)), lambda i, f: f["rank"] % 2 == 0),
    ("fields.rank[gte]=0", lambda i, f: True),
    ("fields.rank[gt]=1e9", lambda i, f: False),
    ("fields.rank[in]=1000,2000", lambda i, f: False),
    ("fields.price[gt]=10.5", lambda i, f: f["price"] > 10.5),
    ("fields.price[lte]=-1e3", lambda i, f: False),
    ("fields.featured=true", lambda i, f: f["featured"]),
    ("fields.featured=false", lambda i, f: not f["featured"]),
    ("fields.featured[in]=true,false", lambda i, f: True),
    ("fields.color=green", lambda i, f: f["color"] == "green"),
    ("fields.color[gt]=green", lambda i, f: f["color"] > "green"),
    ("fields.color[lt]=green", lambda i, f: f["color"] < "green"),
    ("fields.color[in]=red,blue", lambda i, f: f["color"] in ("red", "blue")),
    ("fields.color=Green", lambda i, f: False),
    ("fields.featured=true&fields.color=red", lambda i, f: f["featured"] and f["color"] == "red"),
    ("fields.featured=true&fields.rank[gte]=10", lambda i, f: f["featured"] and f["rank"] >= 10),
]


@pytest.mark.parametrize("query,keep", CASES, ids=[c[0] for c in CASES])
def test_each_operator_answers_the_known_set(client, seeded, query, keep):
    got = walk(client, f"type={seeded['type']}&{query}")
    assert len(got) == len(set(got)), f"{query}: an item twice across pages: {got}"
    assert set(got) == expected(seeded, keep), f"{query}: ranks {sorted(seeded['ids'].get(i, -1) for i in got)}"
    assert seeded["odd"] not in got, f"{query}: a field of another kind matched"


@pytest.mark.parametrize("sort", ["-published_at", "published_at", "-updated_at", "title"])
def test_filters_combine_with_a_tag_and_every_sort(client, seeded, sort):
    query = f"type={seeded['type']}&tag={seeded['tag']}&fields.rank[gte]=10&sort={sort}"
    got = walk(client, query, limit=3)
    assert set(got) == expected(seeded, lambda i, f: i % 2 == 0 and f["rank"] >= 10)
    assert len(got) == len(set(got))
    if sort == "title":
        assert [seeded["ids"][i] for i in got] == sorted(seeded["ids"][i] for i in got), "titles are Item NN"


@pytest.mark.parametrize("sort", ["-published_at", "published_at", "-updated_at", "title"])
@pytest.mark.parametrize("query,keep", [
    ("fields.rank[gte]=10", lambda f: f["rank"] >= 10),
    ("fields.rank[in]=3,4,5,6,7,8", lambda f: 3 <= f["rank"] <= 8),
    ("fields.color=red", lambda f: f["color"] == "red"),
    ("fields.rank[gt]=3&fields.rank[lte]=9", lambda f: 3 < f["rank"] <= 9),
    ("fields.price[lte]=6", lambda f: f["price"] <= 6),
    ("fields.color[gt]=blue", lambda f: f["color"] > "blue"),
])
def test_a_filtered_list_keeps_the_order_of_the_whole_list(client, seeded, sort, query, keep):
    """A list that reads its matches and sorts them (a range, an [in], a
    sort but by published_at), or reads a range of few values value by
    value (SQLite, by published_at: the last three), pages them in exactly
    the order, and with the cursors, of the unfiltered list: page by page
    of 3."""
    whole = walk(client, f"type={seeded['type']}&sort={sort}", limit=7)
    want = [i for i in whole if i in seeded["ids"] and keep(fields_of(seeded["ids"][i]))]
    assert want, "the case should match some items"
    assert walk(client, f"type={seeded['type']}&{query}&sort={sort}", limit=3) == want


def test_a_cursor_belongs_to_its_filters(client, seeded):
    base = f"/v1/main/content?type={seeded['type']}&limit=2"
    page = assert_json(client.get(f"{base}&fields.featured=true"))
    cursor = page["next_cursor"]
    assert cursor
    assert_json(client.get(f"{base}&fields.featured=true&cursor={cursor}"))
    for other in ("fields.featured=false", "", "fields.featured=true&fields.rank[gt]=0"):
        r = client.get(f"{base}&{other}&cursor={cursor}")
        assert_problem(r, 400, mentions="cursor")


def test_an_undeclared_field_is_refused_naming_the_declared_ones(client, seeded):
    r = client.get(f"/v1/main/content?type={seeded['type']}&fields.weight[gt]=3")
    detail = assert_problem(r, 400, mentions="weight")["detail"]
    for declared in ("color (text)", "featured (bool)", "price (number)", "rank (number)"):
        assert declared in detail, detail
    # declared for that type only
    r = client.get("/v1/main/content?type=post&fields.rank=3")
    assert_problem(r, 400, mentions="none")
    # without a type there is nothing declared to filter on
    assert_problem(client.get("/v1/main/content?fields.rank=3"), 400, mentions="type")


@pytest.mark.parametrize("query,mentions", [
    ("fields.rank=abc", "number"),
    ("fields.rank=0x10", "number"),
    ("fields.rank=inf", "number"),
    ("fields.rank=", "number"),
    ("fields.rank[in]=1,two", "number"),
    ("fields.featured=yes", "bool"),
    ("fields.featured=1", "bool"),
    ("fields.featured[gt]=true", "bool"),
    ("fields.color=" + "x" * 300, "256"),
    ("fields.color=%C3", "UTF-8"),
    ("fields.rank[in]=" + ",".join(str(k) for k in range(21)), "20"),
    ("fields.rank[between]=1", "operator"),
    ("fields.Rank=1", "field name"),
    ("fields.rank=1&fields.rank=2", "twice"),
    ("fields.a=1&fields.b=1&fields.c=1&fields.d=1&fields.e=1", "at most 4"),
])
def test_a_value_of_the_wrong_kind_or_a_malformed_filter_is_refused(client, seeded, query, mentions):
    r = client.get(f"/v1/main/content?type={seeded['type']}&{query}")
    assert_problem(r, 400, mentions=mentions)


@pytest.mark.parametrize("param", ["categroy=news", "tpye=post", "limt=3", "stauts=draft", "tags=x", "filter=x",
                                   "where=rank>3", "fields[rank]=3", "field.rank=3", "filter%5Btype%5D=post",
                                   "fields=rank"])
def test_an_unknown_parameter_that_looks_like_a_filter_is_refused(client, seeded, param):
    path = f"/v1/main/content?type={seeded['type']}&limit=2"
    assert_status(client.get(path), 200)  # cached now: the refusal must not depend on it
    r = client.get(f"{path}&{param}")
    assert_problem(r, 400, mentions="looks like a filter")
    assert "category" in r.text and "fields.NAME" in r.text


@pytest.mark.parametrize("param", ["_=1733400000", "utm_source=news", "utm_campaign=x.y", "junk=1", "page=2",
                                   "a=1", "callback=f"])
def test_other_unknown_parameters_are_still_ignored(client, seeded, param):
    path = f"/v1/main/content?type={seeded['type']}&limit=2"
    first = client.get(path)
    r = client.get(f"{path}&{param}")
    assert_status(r, 200)
    assert r.body == first.body


def test_filtered_pages_are_cached_under_their_canonical_filters(client, seeded):
    typ = seeded["type"]
    first = client.get(f"/v1/main/content?type={typ}&fields.color[in]=red,blue&fields.rank[gt]=4&limit=5")
    assert_cache_status(first, MISS_STORED, what="the first filtered read")
    again = client.get(f"/v1/main/content?fields.rank%5Bgt%5D=4&limit=5&type={typ}&fields.color%5Bin%5D=blue,red,blue")
    assert_cache_status(again, HIT, what="the same filters spelt otherwise")
    assert again.body == first.body
    other = client.get(f"/v1/main/content?type={typ}&fields.color[in]=red&fields.rank[gt]=4&limit=5")
    assert_cache_status(other, MISS_STORED, what="other values are another entry")


def test_a_write_moves_an_item_in_and_out_of_a_cached_filtered_list(client, tokens, seeded):
    admin, typ = tokens["admin"], seeded["type"]
    path = f"/v1/main/content?type={typ}&fields.featured=true&limit=100"
    item_id = next(k for k, i in seeded["ids"].items() if i == 1)  # not featured
    before = assert_json(client.get(path))
    assert item_id not in [it["id"] for it in before["items"]]
    assert_cache_status(client.get(path), HIT, what="the filtered list, read again")

    def set_featured(value):
        draft = assert_json(client.get(f"/v1/main/content/{item_id}/draft", token=admin))
        changed = dict(fields_of(1), featured=value)
        save(client, admin, item_id, draft["version"], {"fields": changed})
        publish(client, admin, item_id)

    set_featured(True)
    inside = client.get(path)
    assert item_id in [it["id"] for it in assert_json(inside)["items"]], "featured now: in the list at once"
    assert cache_status(inside) != HIT
    set_featured(False)
    outside = assert_json(client.get(path))
    assert item_id not in [it["id"] for it in outside["items"]], "not featured again: out of the list at once"


def test_the_admin_routes_declare_list_and_drop(client, tokens, seeded):
    admin, typ = tokens["admin"], seeded["type"]
    listed = assert_json(client.get("/v1/main/field-indexes", token=admin))
    mine = {(d["field"], d["kind"]) for d in listed["field_indexes"] if d["type"] == typ}
    assert mine == {("rank", "number"), ("featured", "bool"), ("color", "text"), ("price", "number")}
    assert all(d["index"].startswith("items_field_") for d in listed["field_indexes"])
    assert_status(client.get("/v1/main/field-indexes"), 401)
    assert_status(client.get("/v1/main/field-indexes", token=tokens["write"]), 403)
    r = client.post("/v1/main/field-indexes", json={"type": typ, "field": "rank", "kind": "text"}, token=admin)
    assert_problem(r, 409, mentions="number")
    assert_json(client.post("/v1/main/field-indexes", json={"type": typ, "field": "rank", "kind": "number"},
                            token=admin), 201)  # the same again: nothing changes
    for bad in ({"type": typ, "field": "rank", "kind": "date"}, {"type": typ, "field": "9x", "kind": "text"},
                {"type": "Bad Type", "field": "x", "kind": "text"}, {"field": "x", "kind": "text"}):
        assert_problem(client.post("/v1/main/field-indexes", json=bad, token=admin), 422)

    # a declared field, a cached filtered page, then the declaration dropped
    other = uniq("fd")
    draft = create_item(client, admin, type=other, fields={"size": 3})
    publish(client, admin, draft["id"])
    assert_json(client.post("/v1/main/field-indexes", json={"type": other, "field": "size", "kind": "number"},
                            token=admin), 201)
    path = f"/v1/main/content?type={other}&fields.size=3"
    assert [it["id"] for it in assert_json(client.get(path))["items"]] == [draft["id"]]
    assert_status(client.delete(f"/v1/main/field-indexes/{other}/size", token=admin), 204)
    assert_problem(client.get(path), 400, mentions="not declared")
    assert_status(client.delete(f"/v1/main/field-indexes/{other}/size", token=admin), 404)


def test_a_site_declares_a_bounded_number_of_fields(client, tokens):
    admin, typ = tokens["other_write"], uniq("fb")
    assert_status(client.post("/v1/other/field-indexes", json={"type": typ, "field": "f0", "kind": "number"},
                              token=admin), 403)
    admin = tokens["admin"]
    listed = assert_json(client.get("/v1/main/field-indexes", token=admin))
    room = listed["max"] - len(listed["field_indexes"])
    made = []
    for k in range(room):
        assert_json(client.post("/v1/main/field-indexes", json={"type": typ, "field": f"f{k}", "kind": "number"},
                                token=admin), 201)
        made.append(f"f{k}")
    r = client.post("/v1/main/field-indexes", json={"type": typ, "field": "one_more", "kind": "bool"}, token=admin)
    assert_problem(r, 422, mentions="at most")
    for name in made:
        assert_status(client.delete(f"/v1/main/field-indexes/{typ}/{name}", token=admin), 204)


def test_the_cli_lists_and_drops(server, seeded):
    d = server.deployment
    out = d.cli("fields", "list", "--site", "main", "--db", d.db)
    assert out.returncode == 0, out.stderr
    assert seeded["type"] in out.stdout and "items_field_number_price" in out.stdout
    bad = d.cli("fields", "index", "--site", "main", "--type", seeded["type"], "--field", "x", "--kind", "date",
                "--db", d.db)
    assert bad.returncode == 2 and "bool, number or text" in bad.stderr
    typ = uniq("fc")
    made = d.cli("fields", "index", "--type", typ, "--field", "w", "--kind", "text", "--db", d.db)
    assert made.returncode == 0, made.stderr
    dropped = d.cli("fields", "drop", "--type", typ, "--field", "w", "--db", d.db)
    assert dropped.returncode == 0, dropped.stderr
    again = d.cli("fields", "drop", "--type", typ, "--field", "w", "--db", d.db)
    assert again.returncode == 1 and "not declared" in again.stderr


@pytest.fixture(scope="module")
def planned(deployment, seeded):
    if DB_BACKEND == "postgres":  # what autovacuum does in time on a table that grew: the statistics plans use
        subprocess.run(["psql", "-q", "-c", "ANALYZE items", deployment.db], check=True, capture_output=True,
                       timeout=60)
    srv = deployment.server(name="field-plans", args=["--db-slow-query-ms", "0", "--cache", "false"]).start()
    yield srv
    srv.stop()


def plans_of(client, admin, query):
    """The plans of the list statements a query ran (the slow-query ring)."""
    assert_json(client.get(f"/v1/main/content?{query}"))
    return [q["plan"] for q in assert_json(client.get("/v1/slow-queries", token=admin))["queries"]
            if "FROM items" in q["sql"] and "LIMIT" in q["sql"] and "json" in q["sql"]]


@pytest.mark.parametrize("query,index", [
    ("fields.featured=true", "items_field_bool_featured"),
    ("fields.featured=false&sort=published_at", "items_field_bool_featured"),
    ("fields.color=red", "items_field_text_color"),
    ("fields.rank=7", "items_field_number_rank"),
])
def test_the_plan_walks_the_declared_index(planned, tokens, seeded, query, index):
    client, admin = planned.client(), tokens["admin"]
    plans = plans_of(client, admin, f"type={seeded['type']}&{query}&limit=5")
    assert plans, "the filtered list statement should be in the slow-query ring"
    assert index in plans[0], f"{query} should walk {index}:\n{plans[0]}"
    if DB_BACKEND != "postgres":
        assert "TEMP B-TREE" not in plans[0], f"{query} should not sort:\n{plans[0]}"


@pytest.mark.parametrize("query,index", [
    ("fields.rank[gte]=20", "items_field_number_rank"),
    ("fields.rank[lt]=3", "items_field_number_rank"),
    ("fields.rank[in]=1,2", "items_field_number_rank"),
    ("fields.color[gt]=m&sort=title", "items_field_text_color"),
    ("fields.featured=true&sort=-updated_at", "items_field_bool_featured"),
])
def test_a_range_reads_the_declared_index(planned, tokens, seeded, query, index):
    """A range, an [in] or a sort but by published_at reads its matches
    from the field's index and sorts them: never a walk of the type's
    order that reads `fields` row by row until it has a page (PostgreSQL's
    generic plan chose that walk, whatever the range matched)."""
    client, admin = planned.client(), tokens["admin"]
    plans = plans_of(client, admin, f"type={seeded['type']}&{query}&limit=5")
    assert plans, "the filtered list statement should be in the slow-query ring"
    assert index in plans[0], f"{query} should read {index}:\n{plans[0]}"
    for other in ("items_by_type_published", "items_by_published", "items_by_updated", "items_by_title"):
        assert other not in plans[0], f"{query} should not walk {other}:\n{plans[0]}"


def test_a_range_of_few_values_walks_the_index_value_by_value(planned, tokens, seeded):
    """A range with few values in the published order reads the values,
    then walks the field's index once per value, merged in order: no sort
    (PostgreSQL merges the walks only when each is limited to the page:
    bare, its generic plan appended them and sorted every match)."""
    client, admin = planned.client(), tokens["admin"]
    assert_json(client.get(f"/v1/main/content?type={seeded['type']}&fields.rank[lt]=3&limit=5"))
    ring = assert_json(client.get("/v1/slow-queries", token=admin))["queries"]
    walks = [q["plan"] for q in ring if "UNION ALL" in q["sql"] and "json" in q["sql"]]
    assert walks, "the range should be read value by value"
    assert "items_field_number_rank" in walks[0], walks[0]
    if DB_BACKEND == "postgres":
        assert "Merge Append" in walks[0], walks[0]
        sort_node = re.search(r"(^|->)\s*(Incremental )?Sort\s+\(", walks[0], re.M)
        assert not sort_node, f"the walks should need no sort:\n{walks[0]}"
    else:
        assert "MERGE" in walks[0], walks[0]
        assert "TEMP B-TREE" not in walks[0], f"the walks should need no sort:\n{walks[0]}"


def test_a_range_reads_exact_values(client, tokens):
    """Values read back from the database to walk one by one are the
    same doubles: 0.1 + 0.2 is not 0.3, and neither is lost or doubled."""
    admin, typ = tokens["admin"], uniq("fx")
    values = [0.1, 0.2, 0.1 + 0.2, 0.3, 1 / 3, 2 / 3]
    ids = {}
    for n, x in enumerate(values):
        item = create_item(client, admin, type=typ, slug=f"x-{n}", title=f"X {n}", fields={"x": x})
        publish(client, admin, item["id"])
        ids[item["id"]] = x
    assert_json(client.post("/v1/main/field-indexes", json={"type": typ, "field": "x", "kind": "number"}, token=admin),
                201)
    for query, keep in (("fields.x[gte]=0.1", lambda x: x >= 0.1), ("fields.x[gt]=0.3", lambda x: x > 0.3),
                        ("fields.x[lt]=0.3", lambda x: x < 0.3), ("fields.x[lte]=0.3", lambda x: x <= 0.3)):
        for sort in ("-published_at", "published_at"):
            got = walk(client, f"type={typ}&{query}&sort={sort}", limit=2)
            assert len(got) == len(set(got)), f"{query}: an item twice: {got}"
            assert sorted(ids[i] for i in got) == sorted(x for x in values if keep(x)), query


@pytest.mark.parametrize("query", ["fields.rank[gt]=20", "fields.rank[in]=1,2", "fields.color[lt]=m&sort=title",
                                   "fields.price[lte]=3&tag=x"])
def test_no_filtered_plan_scans_a_table(planned, tokens, seeded, query):
    client, admin = planned.client(), tokens["admin"]
    plans = plans_of(client, admin, f"type={seeded['type']}&{query}&limit=5")
    assert plans
    for line in plans[0].splitlines():
        if DB_BACKEND == "postgres":
            assert "Seq Scan" not in line, plans[0]
        else:
            assert not (line.strip().startswith("SCAN ") and " USING " not in line), plans[0]


def test_a_copy_carries_the_declarations_and_makes_their_indexes(server, seeded, tmp_path):
    """strata copy (from either engine into a new SQLite file): the
    declarations go with the rows, and their indexes are made there."""
    d = server.deployment
    dest = tmp_path / "copy.db"
    assert d.cli("migrate", "--db", dest).returncode == 0
    copied = d.cli("copy", "--from", d.db, "--to", dest, timeout=120)
    assert copied.returncode == 0, copied.stderr
    listed = d.cli("fields", "list", "--db", dest)
    assert listed.returncode == 0, listed.stderr
    for name in ("items_field_number_rank", "items_field_bool_featured", "items_field_text_color"):
        assert name in listed.stdout
    with sqlite3.connect(dest) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"items_field_number_rank", "items_field_bool_featured", "items_field_text_color",
            "items_field_number_price"} <= indexes
