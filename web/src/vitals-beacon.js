/*
 * vitals-beacon.js — strata's part of /vitals.js, appended to web-vitals'
 * attribution build (which defines the global `webVitals`) by the Makefile.
 *
 * A site embeds <script src="https://strata.example/vitals.js" async></script>.
 * Every LCP, INP, CLS, FCP and TTFB web-vitals reports is queued, tagged
 * with the page's path (location.pathname: no query, no fragment) and the
 * request id of the page's own response, which strata (or the site's
 * server) names in the navigation entry's Server-Timing as
 * `reqid;desc="<id>"`. The queue is sent when the page is hidden or left
 * (visibilitychange, pagehide), in batches the endpoint accepts, with
 * navigator.sendBeacon (a fetch with keepalive where that is refused), as
 * text/plain: a CORS-safelisted type, so a beacon to another origin needs
 * no preflight. No cookie is read or written.
 *
 * The endpoint defaults to this script's own origin +
 * /api/performance/metrics; a data-endpoint attribute on the script
 * element overrides it.
 */
(function () {
  'use strict';
  var vitals = window.webVitals;
  if (!vitals || typeof vitals.onLCP !== 'function') return;

  var BATCH = 10; /* metrics per beacon: well under the endpoint's 8 KB */
  var PAGE_MAX = 256;
  var TARGET_MAX = 96;

  var script = document.currentScript || document.querySelector('script[src*="vitals.js"]');
  var endpoint;
  try {
    var base = script && script.src ? script.src : location.href;
    var configured = script && script.getAttribute('data-endpoint');
    endpoint = configured ? new URL(configured, document.baseURI).href : new URL('/api/performance/metrics', base).href;
  } catch (e) {
    return;
  }

  function requestId() {
    try {
      var nav = performance.getEntriesByType('navigation')[0];
      var timings = (nav && nav.serverTiming) || [];
      for (var i = 0; i < timings.length; i++)
        if (timings[i].name === 'reqid' && timings[i].description) return timings[i].description.slice(0, 64);
    } catch (e) {}
    return null;
  }

  /* The element a metric is about, as web-vitals' attribution names it. */
  function target(metric) {
    var a = metric.attribution || {};
    var t = a.target || a.interactionTarget || a.largestShiftTarget || '';
    return typeof t === 'string' ? t.slice(0, TARGET_MAX) : '';
  }

  var queue = [];

  function send(body) {
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    } catch (e) {}
    try {
      fetch(endpoint, {
        method: 'POST',
        body: body,
        keepalive: true,
        mode: 'no-cors',
        credentials: 'omit',
        headers: { 'Content-Type': 'text/plain' },
      });
    } catch (e) {}
  }

  function flush() {
    while (queue.length) send(JSON.stringify(queue.splice(0, BATCH)));
  }

  function report(metric) {
    queue.push({
      name: metric.name,
      value: metric.value,
      id: metric.id,
      rating: metric.rating,
      navigationType: metric.navigationType,
      page: location.pathname.slice(0, PAGE_MAX),
      request_id: requestId(),
      attribution: { target: target(metric) },
    });
    /* reported while hidden (LCP, CLS, INP are): this may be the last chance */
    if (document.visibilityState === 'hidden' || queue.length >= BATCH) flush();
  }

  addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'hidden') flush();
  });
  addEventListener('pagehide', flush);

  vitals.onLCP(report);
  vitals.onINP(report);
  vitals.onCLS(report);
  vitals.onFCP(report);
  vitals.onTTFB(report);
})();
