#
# strata.vcl — Varnish 7 (Debian 12's `varnish`) in front of nginx in front of
# N strata instances, with the xkey vmod (Debian's `varnish-modules`).
#
# The idea: strata already says everything a shared cache needs in its
# response headers (docs/caching.md, "Headers"), so this file only translates
# them into Varnish's terms instead of inventing policy of its own:
#   - CDN-Cache-Control (RFC 9213), else Cache-Control's s-maxage: the TTL;
#   - stale-while-revalidate: how long a stale copy is served while one
#     background fetch refreshes it;
#   - stale-if-error: how long a stale copy is kept for when the backend
#     fails (5xx, refused, timed out);
#   - Surrogate-Key: the tags xkey indexes, so strata's purge job
#     (src/jobs/purge.c) removes exactly the objects of a write.
#
# Run it with, e.g.:
#   varnishd -a 127.0.0.1:6081 -f /etc/varnish/strata.vcl -s malloc,256m
# Tests and scripts/stack.sh rewrite the literal 127.0.0.1:8000 (nginx) with
# sed; the listen address is varnishd's -a flag.

vcl 4.1;

import std;
import xkey;

# nginx (deploy/nginx/strata.conf) on loopback. nginx, not strata, is the
# backend: it spreads requests over the instances and retries an idempotent
# request on the next one when one dies, which a single Varnish backend
# cannot do. Timeouts: connecting on loopback is instant, so 1 s only
# catches a stopped nginx; a first byte may wait for a cache fill (strata's
# own queue deadline is 1 s, a slow PostgreSQL query a few seconds), so 15 s.
backend nginx {
    # host:port in one string (Varnish accepts it), so that the deploy/
    # convention's literal 127.0.0.1:8000 is what tools rewrite.
    .host = "127.0.0.1:8000";
    .connect_timeout = 1s;
    .first_byte_timeout = 15s;
    .between_bytes_timeout = 10s;
    # Passive health is nginx's job; this probe only tells vcl_recv whether
    # to serve stale copies right away (stale-if-error) instead of trying a
    # fetch that will fail. /healthz is strata's liveness route (through
    # nginx: healthy while any instance is). .initial = .threshold so the
    # backend counts as healthy from the first request, not after a probe.
    .probe = {
        .url = "/healthz";
        .interval = 2s;
        .timeout = 1s;
        .window = 5;
        .threshold = 3;
        .initial = 3;
    }
}

# Who may purge: the strata instances, which run the purge job on the same
# machine (cdn.purge_url = http://127.0.0.1:6081/). List the instances'
# addresses here if they run elsewhere.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    # X-Strata-* request headers are this file's own notes between its
    # subroutines (they survive a restart); a client's are dropped.
    if (req.restarts == 0) {
        unset req.http.X-Strata-Grace;
        unset req.http.X-Strata-Cache;
        unset req.http.X-Strata-Fetch;
        unset req.http.X-Strata-Stale-If-Error;
        unset req.http.X-Strata-Stale-Only;
    }

    # ---- purges, exactly as strata's purge job sends them ----------------
    # src/jobs/purge.c sends `<cdn.purge_method> <path of cdn.purge_url>`
    # with the keys space-separated in the header <cdn.purge_header> and no
    # body; the defaults are `PURGE` and `Surrogate-Key`. Any path is
    # accepted: the keys say what goes. `xkey` and `xkey-purge` are accepted
    # too (the vmod's own convention and a common one), for hand-made purges.
    # A hard purge (xkey.purge), not a soft one: a soft purge keeps the old
    # object for its grace time, and the next read would be served that old
    # version (stale-while-revalidate) — a publish must be visible at once.
    # strata counts any 2xx (and 404) as done, so 200 even when nothing was
    # cached under those keys.
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.Surrogate-Key) {
            set req.http.X-Purge-Keys = req.http.Surrogate-Key;
        } elsif (req.http.xkey) {
            set req.http.X-Purge-Keys = req.http.xkey;
        } elsif (req.http.xkey-purge) {
            set req.http.X-Purge-Keys = req.http.xkey-purge;
        } else {
            return (synth(400, "A purge names its keys in Surrogate-Key (space-separated)"));
        }
        set req.http.X-Purged = xkey.purge(req.http.X-Purge-Keys);
        return (synth(200, "Purged " + req.http.X-Purged + " objects"));
    }

    # One id per request from the edge inwards: nginx passes it on and
    # strata logs it and echoes it (X-Request-Id).
    if (!req.http.X-Request-Id) {
        set req.http.X-Request-Id = "v" + req.xid;
    }

    # Editors' requests carry a token: strata answers them `private,
    # no-store`, and a shared cache must never answer them from another's
    # copy, so they go straight through (the built-in VCL does the same;
    # said here so a later `return (hash)` cannot lose it).
    if (req.http.Authorization) {
        return (pass);
    }
    # A read that names a write's WAL position (read-your-writes: the
    # Strata-LSN request header) must see at least that write; a cached copy
    # may be older, so it goes to strata, which knows.
    if (req.http.Strata-LSN) {
        return (pass);
    }

    # Grace: an object is kept past its TTL for max(stale-while-revalidate,
    # stale-if-error) (vcl_backend_response). While the backend is healthy
    # only the stale-while-revalidate part may be served; vcl_hit enforces
    # the per-object limit. With the backend sick (probe) or after a failed
    # fetch (vcl_synth), the whole grace is usable: stale-if-error.
    # req.grace survives a restart, so every branch sets it: 0s makes a
    # lookup ignore stale objects, a year leaves each object's own grace
    # (the lookup takes the smaller of the two) in force.
    set req.grace = 365d;
    if (req.http.X-Strata-Stale-If-Error && req.restarts > 0) {
        set req.http.X-Strata-Grace = "full";
        set req.http.X-Strata-Stale-Only = "1";
    } elsif (!std.healthy(req.backend_hint)) {
        set req.http.X-Strata-Grace = "full";
    } elsif (req.http.X-Strata-Fetch && req.restarts > 0) {
        # vcl_hit found an object past its stale-while-revalidate time:
        # look up again without grace, so this request fetches.
        set req.grace = 0s;
    } else {
        unset req.http.X-Strata-Grace;
    }
    unset req.http.X-Strata-Fetch;
    unset req.http.X-Strata-Stale-If-Error;
    # Everything else: the built-in vcl_recv (GET/HEAD are looked up, other
    # methods pass, a Cookie passes — strata sets none).
}

sub vcl_hit {
    # Past its TTL but within its stale-while-revalidate time: served, and
    # Varnish starts one background fetch (grace mode). Past that, only
    # stale-if-error may serve it: restart and fetch in the foreground.
    if (obj.ttl < 0s && req.http.X-Strata-Grace != "full"
        && obj.ttl + std.duration(obj.http.X-Strata-SWR + "s", 0s) < 0s) {
        set req.http.X-Strata-Fetch = "1";
        return (restart);
    }
    set req.http.X-Strata-Cache = "hit";
}

sub vcl_miss {
    # The retry after a failed fetch is for a stale copy only: without one,
    # answer at once instead of asking the failing backend a second time.
    if (req.http.X-Strata-Stale-Only) {
        return (synth(503, "Service Unavailable"));
    }
    set req.http.X-Strata-Cache = "fwd=miss";
}

sub vcl_pass {
    set req.http.X-Strata-Cache = "fwd=bypass";
}

sub vcl_backend_fetch {
    # Varnish-internal headers stay in Varnish.
    unset bereq.http.X-Strata-Grace;
    unset bereq.http.X-Strata-Cache;
    unset bereq.http.X-Strata-Stale-Only;
}

sub vcl_backend_response {
    # A failed refresh must not replace what we have: a background fetch
    # that gets a 5xx is dropped and the stale copy keeps being served. A
    # foreground one is abandoned too, and vcl_synth retries the request
    # with the whole grace (stale-if-error).
    if (beresp.status >= 500 && !bereq.uncacheable) {
        return (abandon);
    }

    # TTL: CDN-Cache-Control first (RFC 9213: the field meant for a CDN
    # wins over Cache-Control); Varnish itself already read Cache-Control's
    # s-maxage (over max-age, which is strata's short browser lifetime).
    # strata sends both with the same lifetimes today.
    if (beresp.http.CDN-Cache-Control ~ "(^|[, ])(no-store|private)") {
        set beresp.uncacheable = true;
        set beresp.ttl = 120s;
        return (deliver);
    }
    if (beresp.http.CDN-Cache-Control ~ "(^|[, ])(s-maxage|max-age)=[0-9]+") {
        set beresp.ttl = std.duration(
            regsub(beresp.http.CDN-Cache-Control, "^.*?(?:^|[, ])(?:s-maxage|max-age)=([0-9]+).*$", "\1") + "s",
            beresp.ttl);
    }

    # Grace. The lifetimes come from CDN-Cache-Control, else Cache-Control.
    if (beresp.http.CDN-Cache-Control) {
        set beresp.http.X-Strata-Lifetimes = beresp.http.CDN-Cache-Control;
    } else {
        set beresp.http.X-Strata-Lifetimes = beresp.http.Cache-Control;
    }
    set beresp.http.X-Strata-SWR = "0";
    if (beresp.http.X-Strata-Lifetimes ~ "stale-while-revalidate=[0-9]+") {
        set beresp.http.X-Strata-SWR = regsub(beresp.http.X-Strata-Lifetimes,
                                              "^.*stale-while-revalidate=([0-9]+).*$", "\1");
    }
    set beresp.grace = std.duration(beresp.http.X-Strata-SWR + "s", 0s);
    if (beresp.http.X-Strata-Lifetimes ~ "stale-if-error=[0-9]+") {
        set beresp.http.X-Strata-SIE = regsub(beresp.http.X-Strata-Lifetimes,
                                              "^.*stale-if-error=([0-9]+).*$", "\1");
        if (std.duration(beresp.http.X-Strata-SIE + "s", 0s) > beresp.grace) {
            set beresp.grace = std.duration(beresp.http.X-Strata-SIE + "s", 0s);
        }
    }
    unset beresp.http.X-Strata-Lifetimes;
    unset beresp.http.X-Strata-SIE;

    # xkey indexes the `xkey` header only; strata names its tags in
    # Surrogate-Key (space-separated, the same separator xkey splits on).
    # The xkey copy is removed again in vcl_deliver.
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
}

sub vcl_backend_error {
    # Refused, timed out or reset on the way to nginx: a background fetch
    # keeps the stale copy; a foreground one goes to vcl_synth, which
    # retries with the whole grace (stale-if-error).
    return (abandon);
}

sub vcl_synth {
    # A foreground fetch failed (or was abandoned above): once, look the
    # object up again with its whole grace. If a stale copy is there it is
    # served (stale-if-error); if not, vcl_miss answers this 503 at once,
    # and that is what the client gets. (strata's own 503 body is not kept:
    # Varnish 7.1 cannot both abandon a response and deliver it.)
    if (resp.status == 503 && req.method != "PURGE" && req.restarts < 2
        && req.http.X-Strata-Grace != "full") {
        set req.http.X-Strata-Stale-If-Error = "1";
        return (restart);
    }
    # A bare, honest answer (not Varnish's HTML page): strata's clients
    # read problem+json, so errors made here speak it too.
    if (resp.status >= 400) {
        set resp.http.Content-Type = "application/problem+json";
        set resp.body = {"{"type":"about:blank","title":""} + resp.reason +
                        {"","status":"} + resp.status + {","detail":"answered by Varnish: "} +
                        resp.reason + {"""} + "}";
    } else {
        set resp.http.Content-Type = "text/plain; charset=utf-8";
        set resp.body = resp.reason + {"
"};
    }
    return (deliver);
}

sub vcl_deliver {
    # RFC 9211: each cache appends its own entry to strata's Cache-Status.
    # A copy served past its TTL says so (grace: stale-while-revalidate, or
    # stale-if-error when the backend is failing).
    if (req.http.X-Strata-Cache == "hit" && obj.ttl < 0s) {
        if (req.http.X-Strata-Grace == "full") {
            set req.http.X-Strata-Cache = "fwd=stale; detail=stale-if-error";
        } else {
            set req.http.X-Strata-Cache = "hit; detail=stale-while-revalidate";
        }
    }
    if (req.http.X-Strata-Cache) {
        if (resp.http.Cache-Status) {
            set resp.http.Cache-Status = resp.http.Cache-Status + ", varnish; " + req.http.X-Strata-Cache;
        } else {
            set resp.http.Cache-Status = "varnish; " + req.http.X-Strata-Cache;
        }
    }
    # A hit replays the filling request's id: name this request instead.
    set resp.http.X-Request-Id = req.http.X-Request-Id;
    # Kept for a CDN in front of Varnish: Surrogate-Key and CDN-Cache-Control
    # (a CDN purges by the same keys). Internal copies go.
    unset resp.http.xkey;
    unset resp.http.X-Strata-SWR;
}
