// drive.mjs — the browser half of tests/browser/test_vitals_browser.py:
// playwright-core (from web/node_modules) driving Debian's chromium
// (/usr/bin/chromium, headless; never a downloaded browser).
//
//   node tests/browser/drive.mjs '<json config>'
//
// config: {page, dashboard, token, screenshot, timeout_ms}. It opens the
// test page (which embeds strata's /vitals.js), lets it shift its layout,
// clicks (a slow handler, so INP has an interaction to measure), leaves
// for the dashboard (the page is hidden: the beacons flush), waits until
// the dashboard draws the five Web Vitals and a non-zero request rate,
// saves a screenshot, and prints one JSON line of what it saw. Exit 0 if
// it got that far; the Python side judges the values.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'web', 'package.json'));
const { chromium } = require('playwright-core');

const config = JSON.parse(process.argv[2]);
const timeout = config.timeout_ms || 30000;
const args = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
              '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
const seen = { console: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on('console', (m) => seen.console.push(m.type() + ': ' + m.text()));
  page.on('pageerror', (e) => seen.console.push('pageerror: ' + e.message));

  await page.goto(config.page, { waitUntil: 'load', timeout });
  await page.waitForFunction(() => window.__shifted === true, null, { timeout });
  await page.waitForTimeout(300);
  await page.click('#work');
  await page.waitForFunction(() => document.querySelector('#out').textContent.includes('done'), null, { timeout });
  await page.click('#work');
  await page.waitForTimeout(500);
  seen.page_request_id = await page.evaluate(() => {
    const t = performance.getEntriesByType('navigation')[0].serverTiming || [];
    const r = t.find((e) => e.name === 'reqid');
    return r ? r.description : null;
  });

  // leaving the page hides it: web-vitals reports LCP, CLS and INP, and the snippet flushes
  await page.goto(config.dashboard + '#token=' + encodeURIComponent(config.token), { waitUntil: 'load', timeout });
  seen.dashboard_request_id = await page.evaluate(() => {
    const t = performance.getEntriesByType('navigation')[0].serverTiming || [];
    const r = t.find((e) => e.name === 'reqid');
    return r ? r.description : null;
  });
  await page.waitForFunction(
    () => {
      const vitals = ['LCP', 'INP', 'CLS', 'FCP', 'TTFB'];
      const drawn = vitals.every((n) => {
        const card = document.getElementById('vital-' + n);
        return card && card.dataset.p75 !== undefined && card.dataset.p75 !== '';
      });
      const rps = document.getElementById('chart-rps');
      return drawn && Number(rps.dataset.max) > 0 && Number(rps.dataset.points) >= 3;
    },
    null,
    { timeout, polling: 250 },
  );
  await page.waitForTimeout(300);
  seen.dashboard = await page.evaluate(() => {
    const out = { vitals: {}, charts: {} };
    for (const n of ['LCP', 'INP', 'CLS', 'FCP', 'TTFB']) {
      const card = document.getElementById('vital-' + n);
      out.vitals[n] = { p75: Number(card.dataset.p75), rating: card.className.replace('vital', '').trim(),
                        chart_max: Number(document.getElementById('chart-vital-' + n).dataset.max) };
    }
    for (const fig of document.querySelectorAll('figure.chart[id]'))
      out.charts[fig.id] = { max: Number(fig.dataset.max), points: Number(fig.dataset.points),
                             canvas: !!fig.querySelector('canvas') };
    out.status = document.getElementById('status').textContent;
    out.objects_tile = document.getElementById('t-objects').textContent;
    out.login_shown = !document.getElementById('login').hidden;
    out.history_sites = Array.from(document.querySelectorAll('#history tbody tr td:first-child')).map((td) => td.textContent);
    return out;
  });
  await page.screenshot({ path: config.screenshot, fullPage: true });
  seen.screenshot = config.screenshot;
  seen.ok = true;
} catch (e) {
  seen.ok = false;
  seen.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
process.exit(seen.ok ? 0 : 1);
