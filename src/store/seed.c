/*
 * seed.c — deterministic demo content, for `strata seed` and the benchmarks.
 *
 * A splitmix64 generator seeded with `seed` makes every choice, so one seed
 * always gives the same titles, bodies, tags, categories and view counts;
 * only the timestamps follow the clock (spread over the 60 days before now,
 * so popularity windows have something to rank).
 *
 * Text is composed from small word lists. A title is "<Adjective> <subject>
 * <verb> <object> <qualifier>"; a body is paragraphs of sentences built the
 * same way, 1 KB to 50 KB long, skewed toward small (1 KB + 49 KB × u³, u
 * uniform) as real article bodies are. Version k of n holds the first
 * 60 % + 40 % × k / n of the final body (cut at a word), as if the text was
 * written in order and saved along the way: consecutive versions differ a
 * little however many there are. Version n is the published one.
 *
 * Items are written as finished rows (published, with versions, a
 * publication and hourly views) rather than through create/save/publish, so
 * their times can lie in the past. Writes go in transactions of about
 * SEED_BATCH_VERSIONS versions (at least one item): 300 items take a
 * fraction of a second, and a large seed does not grow the WAL unbounded. Slugs end in a counter above every item id
 * in the database, so seeding again adds items without a slug conflict.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

enum {
    SEED_BATCH_VERSIONS = 1000,
    BODY_MIN = 1024,
    BODY_MAX = 50 * 1024,
    PAGE_EVERY = 20, /* one item in 20 is a "page" */
    TAGS_MAX = 5,
};
static const int64_t SEED_SPAN_MS = 60LL * 24 * 3600 * 1000;
static const int64_t HOUR_MS = 3600 * 1000;

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* ---- word lists --------------------------------------------------------- */

static const struct {
    const char *slug, *name, *parent;
} seed_categories[] = {
    /* parents first, so their ids exist when children name them */
    {"news", "News", NULL},           {"technology", "Technology", NULL},   {"business", "Business", NULL},
    {"sport", "Sport", NULL},         {"culture", "Culture", NULL},         {"opinion", "Opinion", NULL},
    {"politics", "Politics", "news"}, {"science", "Science", "technology"},
};

static const char *const tag_words[] = {
    "economy",  "elections", "climate",      "energy",   "housing",  "transport", "education", "health",
    "ai",       "startups",  "space",        "football", "tennis",   "cycling",   "music",     "film",
    "books",    "art",       "food",         "travel",   "privacy",  "security",  "trade",     "jobs",
    "markets",  "europe",    "asia",         "africa",   "americas", "cities",    "rural",     "water",
    "research", "medicine",  "universities", "budget",   "courts",   "media",     "gaming",    "weather",
};

static const char *const authors[] = {"alice", "bruno", "chen", "dara", "emeka", "fatima", "gustav", "hana"};

static const char *const adjectives[] = {
    "regional", "national",    "local", "global",  "rural", "coastal", "northern", "southern",
    "urban",    "independent", "young", "veteran", "small", "leading", "public",   "private",
};
static const char *const subjects[] = {
    "councils", "researchers", "ministers", "startups", "farmers", "teachers", "engineers", "regulators", "voters",
    "artists",  "doctors",     "investors", "students", "unions",  "museums",  "courts",    "fishermen",  "architects",
};
static const char *const verbs[] = {
    "approve", "reject", "unveil",    "debate",  "question", "back", "delay",   "launch",
    "review",  "expand", "challenge", "welcome", "fund",     "test", "rethink", "defend",
};
static const char *const objects[] = {
    "new budget",     "climate plan",     "housing reform",    "transport strategy", "data rules",  "energy deal",
    "school funding", "health programme", "trade agreement",   "water policy",       "digital tax", "festival line-up",
    "research grant", "flood defences",   "broadband rollout", "pension changes",
};
static const char *const qualifiers[] = {
    "after long talks",      "for coastal towns",  "amid rising costs",    "ahead of the vote",
    "in a surprise move",    "despite protests",   "for the next decade",  "as demand grows",
    "with strings attached", "after a close vote", "under new leadership", "at last",
};
static const char *const openers[] = {
    "Meanwhile",        "According to officials",
    "By most accounts", "For now",
    "Last week",        "Critics say",
    "In practice",      "On Tuesday",
    "Privately",        "Even so",
    "At the same time", "Behind the scenes",
};
static const char *const determiners[] = {"the", "many", "some", "most", "several"};
static const char *const page_titles[] = {
    "About us",          "Contact", "Editorial standards", "Privacy policy", "Terms of use",
    "Advertise with us", "Careers", "Corrections",
};

/* ---- randomness --------------------------------------------------------- */

typedef struct seed_rng {
    uint64_t state;
} seed_rng;

/* splitmix64: tiny, fast, and every seed (even 0) gives a good stream. */
static uint64_t rng_next(seed_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rng_below(seed_rng *rng, uint64_t bound)
{
    return rng_next(rng) % bound;
}

/* uniform in [0, 1) */
static double rng_unit(seed_rng *rng)
{
    return (double)(rng_next(rng) >> 11) * 0x1.0p-53;
}

#define PICK(rng, words) ((words)[rng_below((rng), COUNT_OF(words))])

/* ---- text --------------------------------------------------------------- */

typedef struct text {
    char *data;
    size_t length, capacity;
    bool failed; /* out of memory: later appends are ignored */
} text;

static void text_add(text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->failed)
        return;
    if (t->length + n + 1 > t->capacity) {
        size_t capacity = t->capacity ? t->capacity : 256;
        while (t->length + n + 1 > capacity)
            capacity *= 2;
        char *data = realloc(t->data, capacity);
        if (!data) {
            t->failed = true;
            return;
        }
        t->data = data;
        t->capacity = capacity;
    }
    memcpy(t->data + t->length, s, n + 1);
    t->length += n;
}

static void text_clear(text *t)
{
    t->length = 0;
    if (t->data)
        t->data[0] = '\0';
}

static void text_cut(text *t, size_t length)
{
    if (length < t->length) {
        t->length = length;
        t->data[length] = '\0';
    }
}

/* Appends s with its first letter in capitals. */
static void text_add_capitalised(text *t, const char *s)
{
    char first[2] = {s[0] >= 'a' && s[0] <= 'z' ? (char)(s[0] - 'a' + 'A') : s[0], '\0'};
    text_add(t, first);
    if (s[0])
        text_add(t, s + 1);
}

/* "<Adjective> <subject> <verb> <object> <qualifier>" */
static void headline_write(seed_rng *rng, text *t)
{
    text_add_capitalised(t, PICK(rng, adjectives));
    text_add(t, " ");
    text_add(t, PICK(rng, subjects));
    text_add(t, " ");
    text_add(t, PICK(rng, verbs));
    text_add(t, " ");
    text_add(t, PICK(rng, objects));
    text_add(t, " ");
    text_add(t, PICK(rng, qualifiers));
}

static void sentence_write(seed_rng *rng, text *t)
{
    if (rng_below(rng, 3) == 0) {
        text_add(t, PICK(rng, openers));
        text_add(t, ", ");
        text_add(t, PICK(rng, determiners));
    } else {
        text_add_capitalised(t, PICK(rng, determiners));
    }
    text_add(t, " ");
    text_add(t, PICK(rng, adjectives));
    text_add(t, " ");
    text_add(t, PICK(rng, subjects));
    text_add(t, " ");
    text_add(t, PICK(rng, verbs));
    text_add(t, " the ");
    text_add(t, PICK(rng, objects));
    if (rng_below(rng, 2)) {
        text_add(t, " ");
        text_add(t, PICK(rng, qualifiers));
    }
    text_add(t, ".");
}

static void paragraph_write(seed_rng *rng, text *t)
{
    int sentences = 3 + (int)rng_below(rng, 5);
    for (int i = 0; i < sentences; i++) {
        if (i)
            text_add(t, " ");
        sentence_write(rng, t);
    }
}

/* Paragraphs until the skewed target size is reached, never over BODY_MAX. */
static void body_write(seed_rng *rng, text *t)
{
    double u = rng_unit(rng);
    size_t target = BODY_MIN + (size_t)((BODY_MAX - BODY_MIN) * u * u * u);
    while (t->length < target && !t->failed) {
        if (t->length)
            text_add(t, "\n\n");
        paragraph_write(rng, t);
    }
    text_cut(t, BODY_MAX);
}

/* Lowercase words joined by '-', at most max_length bytes. */
static void slug_write(const char *title, char *slug, size_t max_length)
{
    size_t n = 0;
    bool dash = false;
    for (const char *p = title; *p && n < max_length; p++) {
        char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
        bool word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (word && dash && n > 0)
            slug[n++] = '-';
        if (word && n < max_length)
            slug[n++] = c;
        dash = !word;
    }
    slug[n] = '\0';
}

/* ---- one demo item ------------------------------------------------------ */

typedef struct demo_item {
    const char *type;
    const char *author;
    int category; /* index into seed_categories, or -1 */
    text title, excerpt, body;
    char slug[160];
    const char *tags[TAGS_MAX];
    size_t tag_count;
    int reading_minutes;
    bool featured;
    int64_t created_at, published_at, views;
} demo_item;

static void tags_choose(seed_rng *rng, demo_item *item)
{
    size_t want = 1 + (size_t)rng_below(rng, TAGS_MAX);
    item->tag_count = 0;
    while (item->tag_count < want) {
        const char *tag = PICK(rng, tag_words);
        bool seen = false;
        for (size_t i = 0; i < item->tag_count; i++)
            seen = seen || strcmp(item->tags[i], tag) == 0;
        if (!seen)
            item->tags[item->tag_count++] = tag;
    }
}

static void demo_item_compose(seed_rng *rng, int64_t counter, int64_t now, demo_item *item)
{
    text_clear(&item->title);
    text_clear(&item->excerpt);
    text_clear(&item->body);
    bool page = counter % PAGE_EVERY == 0;
    item->type = page ? "page" : "post";
    item->author = PICK(rng, authors);
    item->category = page ? -1 : (int)rng_below(rng, COUNT_OF(seed_categories));
    if (page)
        text_add(&item->title, PICK(rng, page_titles));
    else
        headline_write(rng, &item->title);
    char words[120];
    slug_write(item->title.data ? item->title.data : "", words, 100);
    snprintf(item->slug, sizeof item->slug, "%s-%lld", words, (long long)counter);
    sentence_write(rng, &item->excerpt);
    body_write(rng, &item->body);
    item->tag_count = 0;
    if (!page)
        tags_choose(rng, item);
    item->reading_minutes = (int)(item->body.length / 1200) + 1;
    item->featured = rng_below(rng, 10) == 0;
    item->published_at = now - (int64_t)rng_below(rng, (uint64_t)SEED_SPAN_MS);
    item->created_at = item->published_at - HOUR_MS - (int64_t)rng_below(rng, 47 * (uint64_t)HOUR_MS);
    double u = rng_unit(rng);
    item->views = (int64_t)(20000 * u * u * u * u);
}

/* How much of the final body version `number` of `versions` holds. */
static size_t draft_body_length(const text *body, int number, int versions)
{
    if (number >= versions)
        return body->length;
    size_t length = (size_t)((double)body->length * (0.6 + 0.4 * number / versions));
    while (length > 0 && body->data[length] != ' ' && body->data[length] != '\n')
        length--;
    return length;
}

/* Version `number` of `versions`; the first of several has no excerpt yet. */
static json_t *demo_snapshot(const demo_item *item, const char *category, int number, int versions)
{
    size_t body_length = draft_body_length(&item->body, number, versions);
    json_t *fields = json_pack("{s:i, s:b}", "reading_minutes", item->reading_minutes, "featured", item->featured);
    json_t *snapshot = snapshot_new(item->slug, item->title.data, number == 1 && versions > 1 ? "" : item->excerpt.data,
                                    "", fields, category, snapshot_tags_json(item->tags, item->tag_count));
    if (snapshot && !json_put(snapshot, "body", json_stringn(item->body.data, body_length))) {
        json_decref(snapshot);
        return NULL;
    }
    return snapshot;
}

/* ---- writing ------------------------------------------------------------ */

static int demo_categories_ensure(store_t *st, int64_t site_id, int64_t ids[])
{
    for (size_t i = 0; i < COUNT_OF(seed_categories); i++) {
        db_query q;
        int status =
            db_query_start(st,
                           "INSERT INTO categories(site_id, slug, name, parent_id) VALUES (:site, :slug, :name, "
                           "(SELECT id FROM categories WHERE site_id = :site AND slug = :parent)) "
                           "ON CONFLICT(site_id, slug) DO NOTHING",
                           &q);
        if (status != STORE_OK)
            return status;
        db_bind_int(&q, ":site", site_id);
        db_bind_text(&q, ":slug", seed_categories[i].slug);
        db_bind_text(&q, ":name", seed_categories[i].name);
        db_bind_text(&q, ":parent", seed_categories[i].parent);
        status = db_query_run(&q, "creating the demo categories");
        if (status == STORE_OK)
            status = category_id_lookup(st, site_id, seed_categories[i].slug, &ids[i]);
        if (status != STORE_OK)
            return status;
    }
    return STORE_OK;
}

static int highest_item_id(store_t *st, int64_t *highest)
{
    db_query q;
    int status = db_query_start(st, "SELECT COALESCE(MAX(id), 0) FROM items", &q);
    if (status != STORE_OK)
        return status;
    *highest = db_next_row(&q) ? db_column_int(&q, 0) : 0;
    return db_query_end(&q, "reading the item ids");
}

static int demo_item_insert(store_t *st, int64_t site_id, const demo_item *item, const json_t *published,
                            int64_t category_id, int versions, int64_t *id)
{
    char *fields = json_dumps(json_object_get(published, "fields"), JSON_COMPACT);
    if (!fields)
        return db_fail(st, STORE_ERROR, "out of memory seeding");
    db_query q;
    int status =
        db_query_start(st,
                       "INSERT INTO items(site_id, type, slug, status, title, excerpt, fields, category_id, "
                       "author, created_at, updated_at, published_at, views, draft_version, published_version, "
                       "body) VALUES (:site, :type, :slug, 'published', :title, :excerpt, :fields, :category, "
                       ":author, :created, :published, :published, :views, :versions, :versions, :body) RETURNING id",
                       &q);
    if (status == STORE_OK) {
        db_bind_int(&q, ":site", site_id);
        db_bind_text(&q, ":type", item->type);
        db_bind_text(&q, ":slug", item->slug);
        db_bind_text(&q, ":title", item->title.data);
        db_bind_text(&q, ":excerpt", item->excerpt.data);
        db_bind_text(&q, ":fields", fields);
        db_bind_int_or_null(&q, ":category", category_id, item->category >= 0);
        db_bind_text(&q, ":author", item->author);
        db_bind_int(&q, ":created", item->created_at);
        db_bind_int(&q, ":published", item->published_at);
        db_bind_int(&q, ":views", item->views);
        db_bind_int(&q, ":versions", versions);
        db_bind_text(&q, ":body", item->body.data);
        *id = db_next_row(&q) ? db_column_int(&q, 0) : 0;
        status = db_query_end(&q, "seeding an item");
    }
    free(fields);
    if (status == STORE_CONFLICT)
        return db_fail(st, STORE_CONFLICT, "demo slug '%s' is already taken", item->slug);
    return status;
}

/* Versions 1..versions; the last is `published`, already built. */
static int demo_versions_write(store_t *st, int64_t id, const demo_item *item, const char *category, int versions,
                               json_t *published)
{
    int status = STORE_OK;
    int64_t span = item->published_at - item->created_at;
    for (int number = 1; status == STORE_OK && number <= versions; number++) {
        json_t *snapshot =
            number == versions ? json_incref(published) : demo_snapshot(item, category, number, versions);
        int64_t at = item->created_at + span * (number - 1) / versions;
        status = snapshot ? version_append(st, id, number, "draft", item->author, at, snapshot)
                          : db_fail(st, STORE_ERROR, "out of memory seeding");
        json_decref(snapshot);
    }
    return status;
}

/* Splits the item's views over up to three hours between its publication
 * and now. */
static int demo_views_write(store_t *st, seed_rng *rng, int64_t site_id, int64_t id, const demo_item *item, int64_t now)
{
    int64_t first_hour = item->published_at / HOUR_MS, hours = now / HOUR_MS - first_hour + 1;
    int64_t remaining = item->views;
    int status = STORE_OK;
    for (int bucket = 2; status == STORE_OK && remaining > 0 && bucket >= 0; bucket--) {
        int64_t count = bucket ? (int64_t)rng_below(rng, (uint64_t)remaining + 1) : remaining;
        int64_t hour = first_hour + (int64_t)rng_below(rng, (uint64_t)hours);
        if (count > 0)
            status = views_hourly_add(st, site_id, id, hour, count);
        remaining -= count;
    }
    return status;
}

static int demo_item_write(store_t *st, seed_rng *rng, int64_t site_id, const demo_item *item,
                           const int64_t category_ids[], int versions, int64_t now)
{
    const char *category = item->category >= 0 ? seed_categories[item->category].slug : NULL;
    int64_t category_id = item->category >= 0 ? category_ids[item->category] : 0;
    json_t *published = demo_snapshot(item, category, versions, versions);
    if (!published)
        return db_fail(st, STORE_ERROR, "out of memory seeding");
    int64_t id = 0;
    int status = demo_item_insert(st, site_id, item, published, category_id, versions, &id);
    if (status == STORE_OK)
        status = item_tags_replace(st, id, json_object_get(published, "tags"));
    if (status == STORE_OK)
        status = demo_versions_write(st, id, item, category, versions, published);
    json_decref(published);
    if (status == STORE_OK)
        status = publication_record(st, id, versions, item->published_at, item->author);
    if (status == STORE_OK)
        status = demo_views_write(st, rng, site_id, id, item, now);
    return status;
}

typedef struct seed_run {
    int64_t site_id;
    const char *site_name;
    int versions;
    int64_t now;
    int64_t next_counter;
    int64_t category_ids[COUNT_OF(seed_categories)];
    seed_rng rng;
    demo_item item; /* text buffers reused from item to item */
} seed_run;

/* One batch of items. The generator and the slug counter are restored
 * first, so a run again after a rollback writes the same items. */
typedef struct seed_batch {
    seed_run *run;
    int count;
    seed_rng rng;
    int64_t next_counter;
} seed_batch;

static int seed_batch_tx(store_t *st, void *arg)
{
    seed_batch *batch = arg;
    seed_run *run = batch->run;
    run->rng = batch->rng;
    run->next_counter = batch->next_counter;
    for (int i = 0; i < batch->count; i++) {
        demo_item_compose(&run->rng, run->next_counter++, run->now, &run->item);
        if (run->item.title.failed || run->item.excerpt.failed || run->item.body.failed)
            return db_fail(st, STORE_ERROR, "out of memory seeding");
        int status =
            demo_item_write(st, &run->rng, run->site_id, &run->item, run->category_ids, run->versions, run->now);
        if (status != STORE_OK)
            return status;
    }
    return STORE_OK;
}

static int site_check(store_t *st, int64_t site_id, const char *site_name)
{
    db_query q;
    int status = db_query_start(st, "SELECT 1 FROM sites WHERE id = :site", &q);
    if (status != STORE_OK)
        return status;
    db_bind_int(&q, ":site", site_id);
    bool found = db_next_row(&q);
    status = db_query_end(&q, "looking up the site");
    if (status == STORE_OK && !found)
        return db_fail(st, STORE_NOT_FOUND, "no site '%s' to seed", site_name);
    return status;
}

static int seed_setup_tx(store_t *st, void *arg)
{
    seed_run *run = arg;
    int64_t highest = 0;
    int status = site_check(st, run->site_id, run->site_name);
    if (status == STORE_OK)
        status = demo_categories_ensure(st, run->site_id, run->category_ids);
    if (status == STORE_OK)
        status = highest_item_id(st, &highest);
    run->next_counter = highest + 1;
    return status;
}

int store_seed_demo(store_t *st, int64_t site_id, const char *site_name, int items, int versions, uint32_t seed)
{
    db_clear_error(st);
    if (items < 0 || versions < 1)
        return db_fail(st, STORE_INVALID, "seeding needs items >= 0 and versions >= 1");
    seed_run run = {.site_id = site_id,
                    .site_name = site_name,
                    .versions = versions,
                    .now = store_now_ms(),
                    .rng = {.state = seed}};
    int status = db_transact(st, seed_setup_tx, &run, "seeding");
    int per_batch = versions < SEED_BATCH_VERSIONS ? SEED_BATCH_VERSIONS / versions : 1;
    for (int done = 0; status == STORE_OK && done < items; done += per_batch) {
        seed_batch batch = {.run = &run,
                            .count = items - done < per_batch ? items - done : per_batch,
                            .rng = run.rng,
                            .next_counter = run.next_counter};
        status = db_transact(st, seed_batch_tx, &batch, "seeding");
    }
    free(run.item.title.data);
    free(run.item.excerpt.data);
    free(run.item.body.data);
    return status;
}
