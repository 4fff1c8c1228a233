/*
 * test_fill.c — the fill machine's transition table (src/http/fill.c),
 * without a server: the paths a fill takes (an L2 miss, an L2 hit, a wait
 * on another instance's lease, the refresh of a stale value, a shed job)
 * step through the states they must, transitions the machine must never
 * make are absent, every state is reachable from the L1's miss, and every
 * reachable state leads to RESPOND, the one state with no way out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/fill.h"

/* Steps `events` from `from`, checking each state reached against `want`. */
static void walk(fill_state from, const fill_event *events, const fill_state *want, size_t n)
{
    fill_state s = from;
    for (size_t i = 0; i < n; i++) {
        fill_state next = fill_next(s, events[i]);
        if (next != want[i])
            fail_msg("step %zu: from %s on event %d: %s, expected %s", i, fill_state_name(s), (int)events[i],
                     fill_state_name(next), fill_state_name(want[i]));
        s = next;
    }
}

#define WALK(from, ev, st)                                                                                             \
    do {                                                                                                               \
        const fill_event e_[] = ev;                                                                                    \
        const fill_state s_[] = st;                                                                                    \
        _Static_assert(sizeof(e_) / sizeof(e_[0]) == sizeof(s_) / sizeof(s_[0]), "one state per event");               \
        walk(from, e_, s_, sizeof(e_) / sizeof(e_[0]));                                                                \
    } while (0)
#define L(...)                                                                                                         \
    {                                                                                                                  \
        __VA_ARGS__                                                                                                    \
    }

static void test_l2_miss_fills_from_the_database(void **state)
{
    (void)state;
    WALK(FILL_L1_LOOKUP, L(FILL_EV_LEAD, FILL_EV_MISS, FILL_EV_NO_TIER, FILL_EV_RAN, FILL_EV_DONE),
         L(FILL_TIER_LOOKUP, FILL_TIER_LOOKUP, FILL_DB, FILL_STORE, FILL_RESPOND));
    /* an L2 error, or an L2 that cannot be asked: the database */
    WALK(FILL_L1_LOOKUP, L(FILL_EV_LEAD, FILL_EV_ERROR, FILL_EV_NO_TIER),
         L(FILL_TIER_LOOKUP, FILL_TIER_LOOKUP, FILL_DB));
    WALK(FILL_L1_LOOKUP, L(FILL_EV_LEAD, FILL_EV_NO_TIER), L(FILL_TIER_LOOKUP, FILL_DB));
}

static void test_l2_hit_answers_the_flight(void **state)
{
    (void)state;
    WALK(FILL_L1_LOOKUP, L(FILL_EV_LEAD, FILL_EV_HIT, FILL_EV_DONE), L(FILL_TIER_LOOKUP, FILL_STORE, FILL_RESPOND));
}

static void test_lease_wait_polls_then_fills_alone(void **state)
{
    (void)state;
    WALK(FILL_L1_LOOKUP, L(FILL_EV_LEAD, FILL_EV_BUSY, FILL_EV_POLL, FILL_EV_BUSY, FILL_EV_POLL, FILL_EV_HIT),
         L(FILL_TIER_LOOKUP, FILL_WAIT_LEASE, FILL_TIER_LOOKUP, FILL_WAIT_LEASE, FILL_TIER_LOOKUP, FILL_STORE));
    WALK(FILL_L1_LOOKUP, L(FILL_EV_LEAD, FILL_EV_BUSY, FILL_EV_GIVE_UP, FILL_EV_RAN),
         L(FILL_TIER_LOOKUP, FILL_WAIT_LEASE, FILL_DB, FILL_STORE));
}

static void test_stale_l2_value_is_refreshed(void **state)
{
    (void)state;
    /* answered stale, then refilled under the lease */
    WALK(FILL_L1_LOOKUP, L(FILL_EV_LEAD, FILL_EV_HIT_STALE, FILL_EV_LEAD, FILL_EV_MISS, FILL_EV_NO_TIER, FILL_EV_RAN),
         L(FILL_TIER_LOOKUP, FILL_REFRESH, FILL_TIER_REFILL, FILL_TIER_REFILL, FILL_DB, FILL_STORE));
    /* a flight already refreshes it locally */
    WALK(FILL_TIER_LOOKUP, L(FILL_EV_HIT_STALE, FILL_EV_FOLLOW, FILL_EV_DONE),
         L(FILL_REFRESH, FILL_STORE, FILL_RESPOND));
    /* another instance refreshes it: its value, stale or fresh, once more */
    WALK(FILL_TIER_REFILL, L(FILL_EV_BUSY, FILL_EV_HIT), L(FILL_TIER_REREAD, FILL_STORE));
    WALK(FILL_TIER_REFILL, L(FILL_EV_BUSY, FILL_EV_BUSY, FILL_EV_POLL, FILL_EV_POLL_UNASKED),
         L(FILL_TIER_REREAD, FILL_WAIT_REFRESH, FILL_TIER_REREAD, FILL_DB));
    WALK(FILL_TIER_REFILL, L(FILL_EV_BUSY, FILL_EV_UNASKED), L(FILL_TIER_REREAD, FILL_STORE));
}

static void test_shed_job_still_pays_its_tiers(void **state)
{
    (void)state;
    WALK(FILL_L1_LOOKUP, L(FILL_EV_ALONE, FILL_EV_SHED, FILL_EV_DONE, FILL_EV_DONE),
         L(FILL_DB, FILL_SHED, FILL_STORE, FILL_RESPOND));
}

static void test_no_transition_where_none_may_be(void **state)
{
    (void)state;
    /* the pool's answers only while queued; a rereading fill never sees a
     * stale hit (any value ends it); nothing leaves RESPOND */
    for (int s = 0; s < FILL_STATES; s++)
        if (s != FILL_DB) {
            assert_int_equal(fill_next((fill_state)s, FILL_EV_RAN), FILL_STATES);
            assert_int_equal(fill_next((fill_state)s, FILL_EV_SHED), FILL_STATES);
        }
    assert_int_equal(fill_next(FILL_TIER_REREAD, FILL_EV_HIT_STALE), FILL_STATES);
    assert_int_equal(fill_next(FILL_DB, FILL_EV_HIT), FILL_STATES);
    for (int e = 0; e < FILL_EVENTS; e++)
        assert_int_equal(fill_next(FILL_RESPOND, (fill_event)e), FILL_STATES);
}

/* reach[s]: s is reachable from `from` */
static void reachable(fill_state from, bool reach[FILL_STATES])
{
    memset(reach, 0, FILL_STATES * sizeof(bool));
    reach[from] = true;
    for (bool grew = true; grew;) {
        grew = false;
        for (int s = 0; s < FILL_STATES; s++)
            for (int e = 0; reach[s] && e < FILL_EVENTS; e++) {
                fill_state n = fill_next((fill_state)s, (fill_event)e);
                if (n != FILL_STATES && !reach[n])
                    reach[n] = grew = true;
            }
    }
}

static void test_every_state_reachable_and_every_fill_ends(void **state)
{
    (void)state;
    bool reach[FILL_STATES];
    reachable(FILL_L1_LOOKUP, reach);
    for (int s = 0; s < FILL_STATES; s++)
        if (!reach[s])
            fail_msg("%s is not reachable from l1_lookup", fill_state_name((fill_state)s));
    for (int s = 0; s < FILL_STATES; s++) {
        reachable((fill_state)s, reach);
        if (!reach[FILL_RESPOND])
            fail_msg("%s never reaches respond", fill_state_name((fill_state)s));
        if (s != FILL_L1_LOOKUP && s != FILL_RESPOND && reach[FILL_L1_LOOKUP])
            fail_msg("%s goes back to the L1 lookup", fill_state_name((fill_state)s));
    }
}

static void test_state_names_are_distinct(void **state)
{
    (void)state;
    for (int a = 0; a < FILL_STATES; a++) {
        assert_string_not_equal(fill_state_name((fill_state)a), "?");
        for (int b = a + 1; b < FILL_STATES; b++)
            assert_string_not_equal(fill_state_name((fill_state)a), fill_state_name((fill_state)b));
    }
    assert_string_equal(fill_state_name(FILL_STATES), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_l2_miss_fills_from_the_database),
        cmocka_unit_test(test_l2_hit_answers_the_flight),
        cmocka_unit_test(test_lease_wait_polls_then_fills_alone),
        cmocka_unit_test(test_stale_l2_value_is_refreshed),
        cmocka_unit_test(test_shed_job_still_pays_its_tiers),
        cmocka_unit_test(test_no_transition_where_none_may_be),
        cmocka_unit_test(test_every_state_reachable_and_every_fill_ends),
        cmocka_unit_test(test_state_names_are_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
