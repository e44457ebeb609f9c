// berth's web interface in a real browser (docs/design/web.md). Run by
// scripts/web-e2e.sh, which starts `berth serve` with access control on, makes
// the accounts and pushes the images with crane, then runs `node --test` here
// with the environment below. Elements are found by role and accessible name
// (web.md, "What the end-to-end tests rely on"), never by CSS class.
//
//   BERTH_URL          the server, http://127.0.0.1:PORT
//   E2E_USER/E2E_PASS  a user with write on the namespace team
//   E2E_TAG_DIGEST     the digest team/app:v2 pointed at before the script deleted it
//   E2E_RESULTS        where screenshots go
//   CHROMIUM           the browser (default /usr/bin/chromium)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = need('BERTH_URL');
const user = need('E2E_USER');
const pass = need('E2E_PASS');
const v2Digest = need('E2E_TAG_DIGEST');
const results = process.env.E2E_RESULTS || 'results/web-e2e';
mkdirSync(results, { recursive: true });

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/web-e2e.sh)`);
  return v;
}

// Playwright gives each launch a new, empty profile of its own (it refuses
// --user-data-dir in launch's args).
let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // As root in a container, with no network beyond loopback.
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
    headless: true,
  });
});
after(async () => {
  await browser?.close();
});

// page opens a fresh context (no cookies) and fails the test on any CSP
// violation or script error the page reports.
async function newPage(t, opts = {}) {
  const context = await browser.newContext({ baseURL: base, ...opts });
  const page = await context.newPage();
  const problems = [];
  // A console error is a problem (a CSP violation shows there) except the
  // browser's note on a page answered 403 or 404, which some tests ask for;
  // an asset that fails to load is a problem however it is answered.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 40[34]/.test(m.text())) problems.push(m.text());
  });
  page.on('response', (r) => { if (r.url().includes('/-/assets/') && r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
  page.on('pageerror', (e) => problems.push(String(e)));
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, [], 'the page reported errors (a CSP violation shows here)');
  });
  return page;
}

// shot keeps a screenshot of the page, after checking what a screen reader
// and a keyboard need of every page (web.md, "Accessibility and small
// screens"): one h1, headings that never skip a level, a label for every
// form field, a name for every button and link, th scope on tables' headers.
async function shot(page, name) {
  const problems = await page.evaluate(() => {
    const out = [];
    const name = (el) => (el.getAttribute('aria-label') || el.textContent || el.getAttribute('title') || '').trim();
    if (document.querySelectorAll('h1').length !== 1) out.push(`${document.querySelectorAll('h1').length} h1 elements`);
    let last = 0;
    for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
      const level = Number(h.tagName[1]);
      if (level > last + 1) out.push(`heading "${h.textContent.trim()}" is h${level} after h${last}`);
      last = level;
    }
    for (const f of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
      if (f.labels?.length === 0 && !f.getAttribute('aria-label') && !f.getAttribute('aria-labelledby')) out.push(`field ${f.name || f.id} has no label`);
    }
    for (const b of document.querySelectorAll('button, a[href]')) {
      if (!name(b)) out.push(`${b.tagName.toLowerCase()} without a name: ${b.outerHTML.slice(0, 80)}`);
    }
    for (const th of document.querySelectorAll('table th')) {
      if (!th.getAttribute('scope')) out.push(`th "${th.textContent.trim()}" has no scope`);
    }
    if (!document.documentElement.lang) out.push('html has no lang');
    return out;
  });
  assert.deepEqual(problems, [], `accessibility of ${name} (${page.url()})`);
  await page.screenshot({ path: join(results, `${name}.png`), fullPage: true });
}

async function signIn(page) {
  await page.goto('/-/sign-in');
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(pass);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${user}`).waitFor();
}

// oci asks the OCI API directly (not the browser) with the user's password.
async function oci(method, path) {
  const auth = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
  return fetch(base + path, {
    method,
    headers: { Authorization: auth, Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
}

test('an anonymous visitor sees public namespaces only', async (t) => {
  const page = await newPage(t);
  const res = await page.goto('/');
  assert.equal(res.status(), 200);
  const csp = res.headers()['content-security-policy'] || '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /frame-ancestors 'none'/);
  await page.getByRole('heading', { level: 1, name: 'Namespaces' }).waitFor();
  await page.getByRole('link', { name: 'pub', exact: true }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'team', exact: true }).count(), 0, 'the private namespace team is listed');
  await shot(page, 'home-anonymous');

  // The private namespace and its pages answer 404: their existence does not leak.
  for (const path of ['/-/namespaces/team', '/-/repositories/team/app', '/-/repositories/team/app/-/tags/v1']) {
    const r = await page.goto(path);
    assert.equal(r.status(), 404, `${path} answered ${r.status()} to an anonymous visitor`);
  }
  // A public repository's tags are visible, without a Restore button.
  await page.goto('/-/repositories/pub/tools');
  await page.getByRole('link', { name: 'latest', exact: true }).click();
  await page.getByRole('list', { name: 'History' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /^Restore/ }).count(), 0, 'an anonymous visitor is offered Restore');
});

test('an anonymous POST cannot restore anything', async () => {
  // No session, no CSRF token: refused, and nothing changes.
  const r = await fetch(base + '/-/repositories/team/app/-/tags/v2/restore', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'digest=' + encodeURIComponent(v2Digest),
    redirect: 'manual',
  });
  assert.ok(r.status === 403 || r.status === 404, `anonymous restore answered ${r.status}`);
  assert.equal((await oci('HEAD', '/v2/team/app/manifests/v2')).status, 404, 'the tag came back');
});

test('a signed-in user restores a deleted tag from its history', async (t) => {
  const page = await newPage(t);
  await page.goto('/');
  // The first Tab reaches the skip link.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Skip to content');

  await signIn(page);
  await shot(page, 'home');
  await page.getByRole('link', { name: 'team', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'team' }).waitFor();
  await shot(page, 'namespace');
  await page.getByRole('link', { name: 'team/app', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'team/app' }).waitFor();
  await page.getByRole('link', { name: 'v1', exact: true }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'v2', exact: true }).count(), 0, 'the deleted tag v2 is listed as live');
  await shot(page, 'repository');

  // The history of the deleted tag: who ended it, and a Restore button.
  await page.goto('/-/repositories/team/app/-/tags/v2');
  await page.getByRole('heading', { level: 1, name: 'team/app:v2' }).waitFor();
  const history = page.getByRole('list', { name: 'History' });
  await history.getByText(`user:${user}`).first().waitFor();
  await shot(page, 'tag-history');
  const restore = page.getByRole('button', { name: new RegExp('^Restore ' + v2Digest.slice(0, 19)) });
  await restore.first().click();
  await page.getByRole('status').getByText(/Restored/).waitFor();
  await shot(page, 'tag-restored');

  // Over the OCI API, the tag is back, on the same manifest.
  const r = await oci('HEAD', '/v2/team/app/manifests/v2');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('docker-content-digest'), v2Digest);
});

test('a POST without the CSRF token is refused, even signed in', async (t) => {
  const page = await newPage(t);
  await signIn(page);
  // The session cookie goes with the request, the form's token does not.
  const r = await page.request.post('/-/repositories/team/app/-/tags/v1/expiry', {
    form: { expires_in: '1h' },
    maxRedirects: 0,
  });
  assert.equal(r.status(), 403);
  // A cross-site origin is refused even with a token taken from a form.
  await page.goto('/-/repositories/team/app/-/tags/v1');
  const token = await page.locator('input[name=csrf]').first().inputValue();
  const cross = await page.request.post('/-/repositories/team/app/-/tags/v1/expiry', {
    form: { expires_in: '1h', csrf: token },
    headers: { Origin: 'https://evil.example' },
    maxRedirects: 0,
  });
  assert.equal(cross.status(), 403);
  // Neither set an expiry: the tag's live lifetime has none (management API).
  const auth = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
  const h = await (await fetch(base + '/berth/v1/repositories/team/app/_tags/v1/history', { headers: { Authorization: auth } })).json();
  const live = h.lifetimes.find((l) => l.live);
  assert.ok(live, 'team/app:v1 has no live lifetime');
  assert.equal(live.expires_at, undefined, `a refused POST set an expiry: ${live.expires_at}`);
});

test('a signed-in user sets and clears an expiry', async (t) => {
  const page = await newPage(t);
  await signIn(page);
  await page.goto('/-/repositories/team/app/-/tags/v1');
  await page.getByLabel('Expires in').fill('36h');
  await page.getByRole('button', { name: 'Set expiry' }).click();
  await page.getByRole('status').waitFor();
  await shot(page, 'tag-expiry');
  await page.getByRole('button', { name: 'Clear expiry' }).click();
  await page.getByRole('status').waitFor();
});

test('policies, the collector, sign-out', async (t) => {
  const page = await newPage(t);
  await signIn(page);
  await page.goto('/-/policies?scope=team');
  await page.getByRole('heading', { level: 1, name: 'Policies' }).waitFor();
  await shot(page, 'policies');
  // The collector page is for registry administrators.
  const r = await page.goto('/-/collector');
  assert.ok(r.status() === 403 || r.status() === 404, `the collector page answered ${r.status()} to a namespace user`);
  await page.goto('/');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('banner').getByRole('link', { name: 'Sign in' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'team', exact: true }).count(), 0);
});

test('the admin sees the collector', async (t) => {
  const page = await newPage(t);
  await page.goto('/-/sign-in');
  await page.getByLabel('User name').fill(need('E2E_ADMIN'));
  await page.getByLabel('Password').fill(need('E2E_ADMIN_PASS'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.goto('/-/collector');
  await page.getByRole('heading', { level: 1, name: 'Collector' }).waitFor();
  await shot(page, 'collector');
});

test('the tags page fits a phone', async (t) => {
  const page = await newPage(t, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await signIn(page);
  await page.goto('/-/repositories/team/app');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px at phone width`);
  await shot(page, 'repository-phone');
});
