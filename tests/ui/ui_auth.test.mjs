// Browser test of the official UI (examples/ui) against a host with authentication on
// (issue 13, docs/security.md, docs/ui.md "With authentication on"): the test OIDC
// provider (tests/oidc/provider.lua), `orchestrator serve` with OAUTH2_ACTIVE=true, the
// UI with OAUTH2_ACTIVE=true through NextAuth's generic OIDC provider, Debian's Chromium
// driven by playwright-core. Started by tests/ui/run after ui.test.mjs.
//
// What it shows: the UI logs in through the provider (authorize with automatic consent,
// code, token); it lists processes and starts a task; every request of the browser to
// the host (REST and GraphQL) carries the bearer token, and the WebSocket is served (a
// refused token would be closed with 1008 at once); a user whom a task's
// authorize_callback refuses sees that task disabled in "New task" (GraphQL
// Workflow.isAllowed) and, opening its start page anyway, is signed out by the UI (its
// answer to 403) with no process started and no error page.
//
// Environment (set by ctest): ORCH_BIN, ORCH_SOURCE_DIR, ORCH_TEST_PG_STATE;
// optional CHROMIUM (default /usr/bin/chromium). Screenshots go to tests/ui/artifacts/auth-*.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const source = process.env.ORCH_SOURCE_DIR || path.resolve(here, '../..');
const uiDir = path.join(source, 'examples/ui');
const artifacts = path.join(source, 'tests/ui/artifacts');
const { chromium } = createRequire(path.join(uiDir, 'package.json'))('playwright-core');

const bin = process.env.ORCH_BIN;
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

// What the UI shows when a backend answer is missing or of the wrong shape (as ui.test.mjs).
const ERROR_STATES = ['An unexpected error occurred', 'An error occurred', 'Engine status is unavailable',
  'Incompatible version'];

// The users who log in (the provider's user.json at the time of the login).
const SAM = { sub: 'sam', name: 'Sam Starter', email: 'sam@example.test', preferred_username: 'sam',
  groups: ['orchestrator-write', 'starters'] };
const EVE = { sub: 'eve', name: 'Eve Writer', email: 'eve@example.test', preferred_username: 'eve',
  groups: ['orchestrator-write'] };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(what, fn, timeoutMs = 30000, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

const run = {};

function psql(sql, db = 'postgres') {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', run.pgDir, '-U', 'postgres',
    '-d', db, '-c', sql], { encoding: 'utf8' }).trim();
}

// ---- the test OIDC provider ----

function startProvider() {
  run.oidcDir = path.join(run.tmp, 'oidc');
  fs.mkdirSync(run.oidcDir);
  const log = path.join(run.tmp, 'oidc.log');
  const out = fs.openSync(log, 'a');
  run.oidc = spawn('lua5.4', [path.join(source, 'tests/oidc/provider.lua'), '--dir', run.oidcDir, '--port', '0'],
    { stdio: ['ignore', out, out] });
  return waitFor('the OIDC provider', () => {
    if (run.oidc.exitCode !== null) throw new Error(`OIDC provider exited:\n${fs.readFileSync(log, 'utf8')}`);
    const m = fs.readFileSync(log, 'utf8').match(/listening on (http:\/\/[\d.]+:\d+)/);
    return m ? m[1] : false;
  }, 30000, 100);
}

// Who the provider logs in next (its authorize endpoint consents at once for this user).
function loginAs(user) {
  fs.writeFileSync(path.join(run.oidcDir, 'user.json'), JSON.stringify(user));
}

// An access token for user, through the provider's authorization code flow (no browser).
async function tokenFor(user) {
  loginAs(user);
  const redirect = 'http://127.0.0.1:9/cb';
  const auth = await fetch(`${run.oidcUrl}/authorize?client_id=test&response_type=code&state=s&redirect_uri=`
    + encodeURIComponent(redirect), { redirect: 'manual' });
  const code = new URL(auth.headers.get('location')).searchParams.get('code');
  const res = await fetch(`${run.oidcUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: 'test' }),
  });
  const json = await res.json();
  assert.ok(json.access_token, `no access token: ${JSON.stringify(json)}`);
  return json.access_token;
}

async function api(method, route, body, token) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(run.hostBase + route,
    { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

// ---- host and UI ----

function startHost(productsDir, database, uiOrigin) {
  const log = path.join(run.tmp, 'host.log');
  const out = fs.openSync(log, 'a');
  const env = { ...process.env, DATABASE_URI: database, OAUTH2_ACTIVE: 'true',
    OIDC_CONF_URL: `${run.oidcUrl}/.well-known/openid-configuration`, OAUTH2_RESOURCE_SERVER_ID: 'orchestrator',
    ORCH_AUTH_WRITE_GROUP: 'orchestrator-write', ORCH_UI_ORIGIN: uiOrigin, ORCH_SCHEDULE_DEFAULTS: '0' };
  execFileSync(bin, ['db', 'upgrade', '--migrations', path.join(source, 'migrations')], { env, stdio: 'ignore' });
  const child = spawn(bin, ['serve', '--port', '0', '--lua-dir', path.join(source, 'lua'), '--products', productsDir,
    '--migrations', path.join(source, 'migrations'), '--workers', '2'], { env, stdio: ['ignore', out, out] });
  run.host = child;
  run.hostLog = log;
  return waitFor('the host to listen', () => {
    if (child.exitCode !== null) throw new Error(`host exited:\n${fs.readFileSync(log, 'utf8')}`);
    const m = fs.readFileSync(log, 'utf8').match(/listening on http:\/\/[^:]+:(\d+)/);
    return m ? Number(m[1]) : false;
  }, 60000, 100);
}

async function startUi(hostBase, port) {
  const log = path.join(run.tmp, 'ui.log');
  const out = fs.openSync(log, 'a');
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(path.join(uiDir, 'run'), ['start'], {
    env: { ...process.env, ORCHESTRATOR_API_HOST: hostBase, UI_PORT: String(port), UI_HOST: '127.0.0.1',
      USE_WEB_SOCKETS: 'true', ENVIRONMENT_NAME: 'UI auth test',
      OAUTH2_ACTIVE: 'true', OAUTH2_CLIENT_ID: 'orchestrator-ui', OAUTH2_CLIENT_SECRET: 'ui-test-secret',
      OIDC_CONF_FULL_WELL_KNOWN_URL: `${run.oidcUrl}/.well-known/openid-configuration`,
      NEXTAUTH_URL: `${base}/api/auth`, NEXTAUTH_SECRET: crypto.randomBytes(24).toString('hex') },
    stdio: ['ignore', out, out],
    detached: true,
  });
  run.ui = child;
  run.uiLog = log;
  await waitFor('the UI server', async () => {
    if (child.exitCode !== null) throw new Error(`UI server exited:\n${fs.readFileSync(log, 'utf8')}`);
    const res = await fetch(`${base}/api/auth/session`);
    return res.status < 500;
  }, 90000, 500);
  return base;
}

// ---- pages ----

const bodyText = (page) => page.evaluate(() => document.body.innerText);

async function screenshot(page, name) {
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, `auth-${name}.png`), fullPage: true }).catch(() => {});
}

// A page of context that records each request to the host with its Authorization
// header, the answers >= 400 and the WebSocket frames.
async function watchedPage(context) {
  const page = await context.newPage();
  page.hostRequests = [];
  page.problems = [];
  page.ws = { opened: 0, frames: [] };
  page.on('request', async (req) => {
    if (!req.url().startsWith(run.hostBase)) return;
    const headers = await req.allHeaders().catch(() => req.headers());
    page.hostRequests.push({ method: req.method(), url: req.url().slice(run.hostBase.length),
      authorization: headers.authorization || null });
  });
  page.on('response', (res) => {
    // 510 is the forms protocol's "next page"
    if (res.url().startsWith(run.hostBase) && res.status() >= 400 && res.status() !== 510
      && res.request().method() !== 'OPTIONS') {
      page.problems.push(`${res.request().method()} ${res.url().slice(run.hostBase.length)} -> ${res.status()}`);
    }
  });
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/api/ws/events')) return;
    page.ws.opened += 1;
    ws.on('framereceived', (f) => page.ws.frames.push(String(f.payload)));
  });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  return page;
}

const explain = (page) => (page.problems.length ? `\nwent wrong:\n  ${[...new Set(page.problems)].join('\n  ')}` : '');

// Open the UI as nobody: NextAuth's sign-in page, its "Sign in with OIDC" button, the
// provider (automatic consent for user), back to the UI with a session.
async function logIn(page, user, route = '/') {
  loginAs(user);
  await page.goto(run.uiBase + route, { waitUntil: 'domcontentloaded' });
  await page.waitForURL(/\/api\/auth\/signin/, { timeout: 30000 });
  await screenshot(page, `signin-${user.sub}`);
  await page.getByRole('button', { name: /Sign in with OIDC/ }).click({ timeout: 30000 });
  await page.waitForURL((url) => url.origin === run.uiBase && !url.pathname.startsWith('/api/auth'),
    { timeout: 30000 });
  const session = await page.evaluate(() => fetch('/api/auth/session').then((r) => r.json()));
  assert.ok(session.accessToken, `no access token in the session of ${user.sub}: ${JSON.stringify(session)}`);
  assert.equal(session.user?.name, user.name);
  return session;
}

before(async () => {
  assert.ok(bin, 'ORCH_BIN is not set');
  run.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-ui-auth-'));
  run.pgDir = fs.readFileSync(process.env.ORCH_TEST_PG_STATE, 'utf8').trim();
  run.db = `ui_auth_${process.pid}_${Date.now() % 100000}`;
  psql(`CREATE DATABASE ${run.db}`);
  run.oidcUrl = await startProvider();
  const products = path.join(run.tmp, 'products');
  fs.cpSync(path.join(here, 'auth_products'), products, { recursive: true });
  const uiPort = await freePort();
  const port = await startHost(products, `postgresql://postgres@/${run.db}?host=${run.pgDir}`,
    `http://127.0.0.1:${uiPort}`);
  run.hostBase = `http://127.0.0.1:${port}`;
  run.uiBase = await startUi(run.hostBase, uiPort);
  run.browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  // A completed task to list, started over REST with Sam's token.
  run.samToken = await tokenFor(SAM);
  const started = await api('POST', '/api/processes/ui_auth_open_task', [{ ui_note: 'seeded' }], run.samToken);
  assert.equal(started.status, 201, started.text);
  run.seedTask = started.json.id;
  await waitFor('the seeded task to complete', async () =>
    (await api('GET', `/api/processes/${run.seedTask}`, undefined, run.samToken)).json?.last_status === 'completed');
});

after(async () => {
  await run.browser?.close().catch(() => {});
  if (run.ui && run.ui.exitCode === null) {
    try {
      process.kill(-run.ui.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  if (run.host && run.host.exitCode === null) run.host.kill('SIGKILL');
  if (run.oidc && run.oidc.exitCode === null) run.oidc.kill('SIGTERM');
  if (run.db) {
    try {
      psql(`DROP DATABASE IF EXISTS ${run.db} WITH (FORCE)`);
    } catch {
      // the fixture cluster goes away anyway
    }
  }
  if (process.env.ORCH_UI_KEEP_LOGS !== '1' && run.tmp) fs.rmSync(run.tmp, { recursive: true, force: true });
});

test('the host refuses the API without a token (the UI cannot get in by accident)', async () => {
  assert.equal((await api('GET', '/api/processes')).status, 401);
  assert.equal((await api('POST', '/api/graphql', { query: '{ processes(first: 1) { page { processId } } }' })).status,
    401);
  assert.equal((await api('GET', '/api/health')).status, 200);
});

test('a user logs in through the provider, lists tasks and starts one; the token reaches REST, GraphQL and the WebSocket', async () => {
  const context = await run.browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-GB' });
  const page = await watchedPage(context);
  try {
    const session = await logIn(page, SAM, '/tasks?activeTab=COMPLETED');
    // the list, from the host, with the seeded task
    await waitFor('the completed tasks list', async () => (await bodyText(page)).includes('ui_auth_open_task'), 30000)
      .catch((e) => { throw new Error(`${e.message}${explain(page)}`); });
    await screenshot(page, 'tasks');
    // start a task through its form
    await page.goto(`${run.uiBase}/tasks/new/ui_auth_open_task`);
    await page.locator('input[data-testid="ui_note"]').fill('from the browser', { timeout: 30000 })
      .catch((e) => { throw new Error(`${e.message}${explain(page)}`); });
    await page.getByRole('button', { name: 'Start task', exact: true }).click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}/, { timeout: 30000 })
      .catch((e) => { throw new Error(`${e.message}${explain(page)}`); });
    const id = page.url().match(/\/tasks\/([0-9a-f-]{36})/)[1];
    const done = await waitFor(`task ${id} to complete`, async () => {
      const d = (await api('GET', `/api/processes/${id}`, undefined, run.samToken)).json;
      return d?.last_status === 'completed' ? d : false;
    }, 60000);
    assert.equal(done.current_state.recorded, 'from the browser');
    // the host recorded the user of the token, not SYSTEM
    assert.equal(psql(`SELECT created_by FROM processes WHERE pid = '${id}'`, run.db), SAM.name);
    await screenshot(page, 'task-started');
    // the WebSocket: served (a missing or refused token is closed with 1008 right after the
    // handshake, before any answer; page loads close and reopen it, which is fine)
    await waitFor('__pong__ on /api/ws/events', () => page.ws.frames.includes('__pong__'), 20000)
      .catch(() => { throw new Error(`no WebSocket answer (opened ${page.ws.opened}, frames ${JSON.stringify(page.ws.frames)})`); });
    // every REST and GraphQL request of the browser carried the session's access token
    const api_ = page.hostRequests.filter((r) => r.method !== 'OPTIONS' && !r.url.startsWith('/api/ws/'));
    assert.ok(api_.some((r) => r.url.startsWith('/api/graphql')), 'no GraphQL request seen');
    assert.ok(api_.some((r) => r.url.startsWith('/api/processes')), 'no REST request to /api/processes seen');
    const without = api_.filter((r) => r.authorization !== `Bearer ${session.accessToken}`);
    assert.deepEqual(without.map((r) => `${r.method} ${r.url}`), [], 'requests without the bearer token');
    assert.deepEqual(page.problems.filter((p) => !p.includes('/api/search/definitions')), []);
    const text = await bodyText(page);
    assert.deepEqual(ERROR_STATES.filter((m) => text.includes(m)), []);
    assert.doesNotMatch(fs.readFileSync(run.hostLog, 'utf8'), /token refused/);
  } finally {
    await context.close();
  }
});

test('a user whom the task\'s authorize_callback refuses sees it disabled and is not let start it', async () => {
  // the host's answer for each user (GraphQL Workflow.isAllowed, REST 403)
  const eveToken = await tokenFor(EVE);
  const q = { query: '{ workflows(first: 100, after: 0, filterBy: [{field: "isTask", value: "true"}]) '
    + '{ page { name isAllowed } } }' };
  const allowed = async (token) => Object.fromEntries((await api('POST', '/api/graphql', q, token)).json.data
    .workflows.page.map((w) => [w.name, w.isAllowed]));
  assert.equal((await allowed(eveToken)).ui_auth_starters_only, false);
  assert.equal((await allowed(run.samToken)).ui_auth_starters_only, true);
  assert.equal((await api('POST', '/api/processes/ui_auth_starters_only', [{}], eveToken)).status, 403);

  const context = await run.browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-GB' });
  const page = await watchedPage(context);
  try {
    await logIn(page, EVE, '/tasks');
    await page.getByRole('button', { name: 'New task' }).click({ timeout: 30000 })
      .catch((e) => { throw new Error(`${e.message}${explain(page)}`); });
    const refused = page.getByRole('option', { name: /UI auth: only starters start it/ });
    const open = page.getByRole('option', { name: /UI auth: a task every writer starts/ });
    await refused.waitFor({ timeout: 30000 });
    await screenshot(page, 'new-task-eve');
    assert.equal(await refused.getAttribute('aria-disabled'), 'true');
    assert.notEqual(await open.getAttribute('aria-disabled'), 'true');
    // The start page anyway: the host answers 403, the UI signs the user out (its answer to
    // 401/403 with auth on) instead of showing a broken page, and nothing starts.
    await page.goto(`${run.uiBase}/tasks/new/ui_auth_starters_only`);
    await page.waitForURL(/\/api\/auth\/signin/, { timeout: 30000 })
      .catch((e) => { throw new Error(`${e.message}${explain(page)}`); });
    await screenshot(page, 'refused-eve');
    assert.ok(page.problems.some((p) => p.startsWith('POST /api/processes/ui_auth_starters_only') && p.endsWith('403')),
      `no 403 for the start: ${explain(page)}`);
    const text = await bodyText(page);
    assert.deepEqual(ERROR_STATES.filter((m) => text.includes(m)), []);
    assert.equal(psql(`SELECT count(*) FROM processes p JOIN workflows w USING (workflow_id)
      WHERE w.name = 'ui_auth_starters_only'`, run.db), '0');
  } finally {
    await context.close();
  }
});

test('the host stops cleanly (no sanitizer report)', async () => {
  const child = run.host;
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.kill('SIGTERM');
  const { code, signal } = await exited;
  const log = fs.readFileSync(run.hostLog, 'utf8');
  for (const mark of ['AddressSanitizer', 'LeakSanitizer', 'UndefinedBehaviorSanitizer', 'runtime error:']) {
    assert.ok(!log.includes(mark), `host log has a sanitizer report:\n${log.slice(-4000)}`);
  }
  assert.equal(code, 0, `host exit ${code} ${signal}:\n${log.slice(-2000)}`);
});
