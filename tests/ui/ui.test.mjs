// Browser tests of the official orchestrator UI (examples/ui, components 7.5.0)
// against the real host: a database of the ctest fixture cluster,
// `orchestrator serve` with the example products plus tests/ui/products and its
// step workers, the built UI server, and Debian's Chromium driven by
// playwright-core. Started by tests/ui/run (which skips when the UI is not built).
//
// Environment (set by ctest): ORCH_BIN, ORCH_SOURCE_DIR, ORCH_TEST_PG_STATE;
// optional CHROMIUM (default /usr/bin/chromium).
// Screenshots of every page go to tests/ui/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
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

// What the UI shows when a backend answer is missing or of the wrong shape.
const ERROR_STATES = [
  'An unexpected error occurred', // WfoErrorBoundary, pydantic-forms
  'An error occurred', // WfoError / WfoErrorWithMessage
  'Engine status is unavailable', // header engine badge without a valid /settings/status
  'Incompatible version', // header badge: version.applicationVersions below the UI's minimum
];

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
      if (e.fatal) throw e; // no point in waiting any longer
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

const run = {}; // host, ui, browser, seeded ids

function psql(sql) {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', run.pgDir, '-U', 'postgres',
    '-d', 'postgres', '-c', sql], { encoding: 'utf8' });
}

async function api(method, route, body) {
  const res = await fetch(run.hostBase + route, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

async function processStatus(id) {
  const { status, json } = await api('GET', `/api/processes/${id}`);
  assert.equal(status, 200, `GET /api/processes/${id}`);
  return json;
}

async function waitForStatus(id, wanted, timeoutMs = 60000) {
  return waitFor(`process ${id} to be ${wanted}`, async () => {
    const p = await processStatus(id);
    if (p.last_status === 'failed') {
      throw Object.assign(new Error(`process ${id} failed: ${JSON.stringify(p.failed_reason ?? p)}`), { fatal: true });
    }
    return p.last_status === wanted ? p : false;
  }, timeoutMs);
}

// Start a workflow over REST, replaying the form pages as the UI does.
async function startOverRest(workflow, pages) {
  const res = await api('POST', `/api/processes/${workflow}`, pages);
  assert.equal(res.status, 201, `POST /api/processes/${workflow} ${JSON.stringify(pages)}: ${res.text}`);
  return res.json.id;
}

// The example products' NetBox and LSO: examples/fake-netbox on a free port.
async function startFakeNetbox() {
  const port = await freePort();
  const log = path.join(run.tmp, 'fake-netbox.log');
  const out = fs.openSync(log, 'a');
  run.netbox = spawn(path.join(source, 'examples/fake-netbox/run'), ['--port', String(port), '--bootstrap'],
    { stdio: ['ignore', out, out] });
  await waitFor('the fake NetBox', async () => {
    if (run.netbox.exitCode !== null) throw new Error(`fake NetBox exited:\n${fs.readFileSync(log, 'utf8')}`);
    return (await fetch(`http://127.0.0.1:${port}/api/status/`).catch(() => null)) !== null;
  }, 30000, 200);
  return `http://127.0.0.1:${port}`;
}

function startHost(productsDir, database, netbox, uiOrigin) {
  const log = path.join(run.tmp, 'host.log');
  const out = fs.openSync(log, 'a');
  // ORCH_SCHEDULE_DEFAULTS=1 (the shipped default, set here whatever the caller's environment says):
  // the host creates core's default schedules at start, which the scheduled-tasks page lists.
  const env = { ...process.env, DATABASE_URI: database, ORCH_SERVICE_NETBOX_URL: netbox, ORCH_SERVICE_LSO_URL: netbox,
    ORCH_SERVICE_NETBOX_TOKEN: '0123456789abcdef0123456789abcdef01234567', ORCH_SCHEDULER: '1',
    ORCH_SCHEDULE_DEFAULTS: '1', ORCH_UI_ORIGIN: uiOrigin };
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
  const child = spawn(path.join(uiDir, 'run'), ['start'], {
    env: { ...process.env, ORCHESTRATOR_API_HOST: hostBase, UI_PORT: String(port), UI_HOST: '127.0.0.1',
      OAUTH2_ACTIVE: 'false', USE_WEB_SOCKETS: 'true', ENVIRONMENT_NAME: 'UI test' },
    stdio: ['ignore', out, out],
    detached: true, // its own process group: next and its workers stop together
  });
  run.ui = child;
  run.uiLog = log;
  const base = `http://127.0.0.1:${port}`;
  await waitFor('the UI server', async () => {
    if (child.exitCode !== null) throw new Error(`UI server exited:\n${fs.readFileSync(log, 'utf8')}`);
    const res = await fetch(`${base}/api/auth/session`);
    return res.status < 500;
  }, 90000, 500);
  return base;
}

// A fresh page that records what went wrong between the browser and the host.
async function newPage(name) {
  const page = await run.context.newPage();
  const problems = [];
  page.on('response', async (res) => {
    const url = res.url();
    if (!url.startsWith(run.hostBase)) return;
    const where = `${res.request().method()} ${url.slice(run.hostBase.length)}`;
    // 510 is the forms protocol's "next page"; /search/definitions answers 404 on purpose.
    if (res.status() >= 400 && res.status() !== 510 && !url.endsWith('/api/search/definitions')) {
      problems.push(`${where} -> HTTP ${res.status()}`);
    } else if (url.endsWith('/api/graphql')) {
      try {
        const body = await res.json();
        const op = res.request().postDataJSON()?.operationName;
        if (body.errors) problems.push(`GraphQL ${op}: ${body.errors.map((e) => e.message).join('; ')}`);
        if (!body.data) problems.push(`GraphQL ${op}: no data`);
      } catch {
        // the body is gone once the page navigates; nothing to report
      }
    }
  });
  page.on('requestfailed', (req) => {
    if (req.url().startsWith(run.hostBase)) problems.push(`${req.method()} ${req.url().slice(run.hostBase.length)} failed: ${req.failure()?.errorText}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.problems = problems;
  page.shotName = name;
  return page;
}

const bodyText = (page) => page.evaluate(() => document.body.innerText);

function shownErrors(text) {
  return ERROR_STATES.filter((marker) => text.includes(marker));
}

function explain(page) {
  const unique = [...new Set(page.problems)];
  return unique.length ? `\nrequests that went wrong:\n  ${unique.slice(0, 15).join('\n  ')}` : '';
}

async function screenshot(page, name = page.shotName) {
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true }).catch(() => {});
}

// Open a page and wait until every expected text shows and no error state is on
// screen; then, once the network has settled, check again and keep a screenshot.
// Error states are judged when the page has settled: the engine badge reads
// "Engine status is unavailable" while its first request is in flight.
async function checkPage(name, route, expected, { timeoutMs = 30000 } = {}) {
  const page = await newPage(name);
  const state = async () => {
    const text = await bodyText(page);
    return { missing: expected.filter((t) => !text.includes(t)), errors: shownErrors(text) };
  };
  const settled = async (ms) => {
    let last;
    try {
      await waitFor('the page', async () => {
        last = await state();
        return last.missing.length === 0 && last.errors.length === 0;
      }, ms, 300);
      return null;
    } catch {
      return last;
    }
  };
  try {
    await page.goto(run.uiBase + route, { waitUntil: 'domcontentloaded' });
    let bad = await settled(timeoutMs);
    if (!bad) {
      await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
      bad = await settled(5000);
    }
    await screenshot(page);
    if (bad) {
      const parts = [];
      if (bad.missing.length) parts.push(`does not show ${JSON.stringify(bad.missing)}`);
      if (bad.errors.length) parts.push(`shows the UI's error state ${JSON.stringify(bad.errors)}`);
      assert.fail(`${route} ${parts.join(' and ')}${explain(page)}`);
    }
  } finally {
    await page.close();
  }
}

before(async () => {
  assert.ok(bin, 'ORCH_BIN is not set');
  run.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-ui-'));
  run.pgDir = fs.readFileSync(process.env.ORCH_TEST_PG_STATE, 'utf8').trim();
  run.db = `ui_${process.pid}_${Date.now() % 100000}`;
  psql(`CREATE DATABASE ${run.db}`);
  // The example products (at the root: their modules are named from it) and the
  // test's own workflows in a subfolder, loaded as one products folder.
  const products = path.join(run.tmp, 'products');
  fs.cpSync(path.join(source, 'products'), products, { recursive: true });
  fs.cpSync(path.join(here, 'products'), path.join(products, 'ui_test'), { recursive: true });
  const netbox = await startFakeNetbox();
  // The UI's origin is the only foreign one the host allows (CORS, WebSocket): pick its port first.
  const uiPort = await freePort();
  const port = await startHost(products, `postgresql://postgres@/${run.db}?host=${run.pgDir}`, netbox,
    `http://127.0.0.1:${uiPort}`);
  run.hostBase = `http://127.0.0.1:${port}`;
  run.uiBase = await startUi(run.hostBase, uiPort);
  run.browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  run.context = await run.browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-GB' });

  // Data for the pages, made over REST so that every page test has something to
  // show even when a form test fails: a Node subscription and a completed task.
  const { json: productList } = await api('GET', '/api/products/');
  run.product = productList.find((p) => p.name === 'node FRR');
  assert.ok(run.product, 'the example products have no "node FRR"');
  run.seedProcess = await startOverRest('ui_test_create_node',
    [{ product: run.product.product_id }, { node_name: 'seed-node' }, { node_description: 'seeded over REST' }]);
  const seeded = await waitForStatus(run.seedProcess, 'completed');
  run.seedSubscription = seeded.current_state.subscription_id;
  run.seedTask = await startOverRest('ui_test_form_task', [{ ui_owner: 'seed' }, { ui_count: 1 }]);
  await waitForStatus(run.seedTask, 'completed');
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
  if (run.netbox && run.netbox.exitCode === null) run.netbox.kill('SIGTERM');
  if (run.db) {
    try {
      psql(`DROP DATABASE IF EXISTS ${run.db} WITH (FORCE)`);
    } catch {
      // the fixture cluster goes away anyway
    }
  }
  if (process.env.ORCH_UI_KEEP_LOGS !== '1' && run.tmp) fs.rmSync(run.tmp, { recursive: true, force: true });
});

// react-select dropdowns of pydantic-forms: open one and take its first option.
async function pickFirstOption(page, id) {
  const input = page.locator(`[id="${id}.search"]`);
  await input.click({ timeout: 30000 });
  await input.press('ArrowDown');
  await input.press('Enter');
}

// The option labels of each choice field of a 510 form page, as the dropdowns list
// them (which one pickFirstOption lands on depends on the dropdown's focus handling).
function optionLabels(form, fields) {
  const out = {};
  for (const field of fields) {
    const ref = form.properties[field].$ref;
    const def = form.$defs[ref.split('/').pop()];
    out[field] = def.enum.map((value) => def.options?.[value] ?? value);
  }
  return out;
}

test('a node is created through the form pages ("Next", "Start workflow") and completes', async () => {
  // The example's own create_node: NetBox choices (fake NetBox), then a summary page.
  const choices = ['customer_id', 'type_id', 'role_id', 'site_id'];
  const page1 = await api('POST', '/api/processes/create_node', [{ product: run.product.product_id }]);
  assert.equal(page1.status, 510, page1.text);
  const labels = optionLabels(page1.json.form, choices);
  const page = await newPage('workflows-new-node');
  try {
    const fail = (e) => new Error(`${e.message}${explain(page)}`);
    await page.goto(`${run.uiBase}/workflows/new/create_node?productId=${run.product.product_id}`);
    await page.locator('input[data-testid="node_name"]').waitFor({ timeout: 30000 }).catch((e) => { throw fail(e); });
    // issue 11: fields are labelled for people, not with the choice's class name
    const form1 = await bodyText(page);
    for (const label of ['Customer', 'Node type', 'Node role', 'Site', 'Node status', 'Node name']) {
      assert.ok(form1.includes(label), `the create_node form does not show the label "${label}"`);
    }
    assert.doesNotMatch(form1, /\w+Choice\b/, 'a field of the create_node form is labelled with its enum name');
    for (const id of choices) {
      await pickFirstOption(page, id).catch((e) => { throw fail(e); });
    }
    await page.locator('input[data-testid="node_name"]').fill('ui-node-1');
    await screenshot(page, 'workflows-new-node-page1');
    await page.getByRole('button', { name: 'Next', exact: true }).click();
    const start = page.getByRole('button', { name: 'Start workflow', exact: true });
    await start.waitFor({ timeout: 30000 }).catch((e) => { throw fail(e); });
    await screenshot(page, 'workflows-new-node-page2');
    // issue 11: the summary names what was chosen (no raw ids, no "None")
    const summary = await page.locator('[id="summary-table"]').innerText({ timeout: 30000 }).catch((e) => { throw fail(e); });
    for (const label of ['Customer', 'Node role', 'Node type', 'Site', 'Node description']) {
      assert.ok(summary.includes(label), `the summary does not show the row "${label}":\n${summary}`);
    }
    const picked = {};
    for (const field of choices) {
      picked[field] = labels[field].find((label) => summary.includes(label));
      assert.ok(picked[field], `the summary shows none of the names of ${field} (${labels[field].join(', ')}):\n${summary}`);
    }
    assert.doesNotMatch(summary, /role_id|site_id|type_id|customer_id|\bNone\b/, `the summary shows raw names:\n${summary}`);
    await start.click();
    await page.waitForURL(/\/workflows\/[0-9a-f-]{36}/, { timeout: 30000 }).catch((e) => { throw fail(e); });
    const id = page.url().match(/\/workflows\/([0-9a-f-]{36})/)[1];
    const done = await waitForStatus(id, 'completed', 120000);
    assert.equal(done.current_state.node_name, 'ui-node-1');
    const sub = await api('GET', `/api/subscriptions/domain-model/${done.current_state.subscription_id}`);
    assert.equal(sub.status, 200, sub.text);
    assert.equal(sub.json.status, 'active');
    await screenshot(page, 'workflows-new-node-done');
    run.formSubscription = done.current_state.subscription_id;
    run.formCustomer = picked.customer_id;
  } finally {
    await page.close();
  }
});

// issue 11: the subscription page names the example's customer (SURF, ESnet, GÉANT),
// not core's default customer.
test('the subscription page shows the customer the example provides', async () => {
  assert.ok(run.formSubscription, 'the create_node form test made no subscription');
  assert.ok(['SURF', 'ESnet', 'GÉANT'].includes(run.formCustomer), `unexpected customer ${run.formCustomer}`);
  const page = await newPage('subscription-detail-customer');
  try {
    const fail = (e) => new Error(`${e.message}${explain(page)}`);
    await page.goto(`${run.uiBase}/subscriptions/${run.formSubscription}`, { waitUntil: 'domcontentloaded' });
    await waitFor('the subscription page', async () => (await bodyText(page)).includes('node ui-node-1 (active)'), 30000);
    // The customer is on the "General" tab of the subscription page.
    await page.getByText('General', { exact: true }).first().click({ timeout: 30000 }).catch((e) => { throw fail(e); });
    await waitFor('the customer on the subscription page', async () => (await bodyText(page)).includes(run.formCustomer), 30000);
    await screenshot(page, 'subscription-detail-customer');
    assert.ok(!(await bodyText(page)).includes('Default::Orchestrator-Core Customer'),
      'the subscription page shows core\'s default customer');
  } finally {
    await page.close();
  }
});

test('a task is started through its two form pages ("Next", "Start task") and completes', async () => {
  const page = await newPage('tasks-new');
  try {
    const fail = (e) => new Error(`${e.message}${explain(page)}`);
    await page.goto(`${run.uiBase}/tasks/new/ui_test_form_task`);
    await page.locator('input[data-testid="ui_owner"]').fill('alice', { timeout: 30000 }).catch((e) => { throw fail(e); });
    await screenshot(page, 'tasks-new-page1');
    await page.getByRole('button', { name: 'Next', exact: true }).click();
    await page.locator('input[data-testid="ui_count"]').fill('3', { timeout: 30000 }).catch((e) => { throw fail(e); });
    await screenshot(page, 'tasks-new-page2');
    await page.getByRole('button', { name: 'Start task', exact: true }).click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}/, { timeout: 30000 }).catch((e) => { throw fail(e); });
    const id = page.url().match(/\/tasks\/([0-9a-f-]{36})/)[1];
    const done = await waitForStatus(id, 'completed');
    assert.equal(done.current_state.recorded, 'alice:3');
  } finally {
    await page.close();
  }
});

test('a suspended process is resumed from its detail page', async () => {
  const id = await startOverRest('ui_test_input_task', [{}]);
  await waitForStatus(id, 'suspended');
  const page = await newPage('tasks-resume');
  try {
    const fail = (e) => new Error(`${e.message}${explain(page)}`);
    await page.goto(`${run.uiBase}/tasks/${id}`);
    await page.locator('input[data-testid="approved_by"]').fill('carol', { timeout: 30000 }).catch((e) => { throw fail(e); });
    await screenshot(page, 'tasks-resume-form');
    await page.getByRole('button', { name: /^Resume (task|workflow)$/ }).click();
    const done = await waitForStatus(id, 'completed');
    assert.equal(done.current_state.approved_by, 'carol');
    await screenshot(page, 'tasks-resume-done');
  } finally {
    await page.close();
  }
});

test('the process detail page updates live through the WebSocket', async () => {
  const id = await startOverRest('ui_test_input_task', [{}]);
  await waitForStatus(id, 'suspended');
  const page = await newPage('tasks-live');
  const frames = [];
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/api/ws/events')) return;
    ws.on('framereceived', (f) => frames.push(String(f.payload)));
  });
  try {
    await page.goto(`${run.uiBase}/tasks/${id}`);
    await waitFor('the suspended process on its page', async () => /suspended/i.test(await bodyText(page)), 30000)
      .catch((e) => { throw new Error(`${e.message}${explain(page)}`); });
    await waitFor('__pong__ on /api/ws/events', () => frames.includes('__pong__'), 10000)
      .catch(() => { throw new Error(`no WebSocket answer on /api/ws/events (frames: ${JSON.stringify(frames)})${explain(page)}`); });
    assert.doesNotMatch(await bodyText(page), /\bcompleted\b/i);
    const resumed = await api('PUT', `/api/processes/${id}/resume`, [{ approved_by: 'dave' }]);
    assert.equal(resumed.status, 204, resumed.text);
    await waitForStatus(id, 'completed');
    // No reload: only an invalidateCache message makes the page fetch the process again.
    await waitFor('the page to show "completed" without a reload', async () => /\bcompleted\b/i.test(await bodyText(page)), 20000)
      .catch((e) => { throw new Error(`${e.message}; frames received: ${JSON.stringify(frames.slice(-5))}`); });
    await screenshot(page);
  } finally {
    await page.close();
  }
});

test('the engine is paused and started again from the settings page', async () => {
  const page = await newPage('settings-engine');
  try {
    const fail = (e) => new Error(`${e.message}${explain(page)}`);
    await page.goto(`${run.uiBase}/settings`);
    await page.getByRole('button', { name: 'Pause workflow engine' }).click({ timeout: 30000 }).catch((e) => { throw fail(e); });
    await waitFor('the engine to pause', async () => {
      const { json } = await api('GET', '/api/settings/status');
      return json.global_lock === true && ['PAUSED', 'PAUSING'].includes(json.global_status);
    }, 15000);
    await page.getByRole('button', { name: 'Start workflow engine' }).waitFor({ timeout: 15000 }).catch((e) => { throw fail(e); });
    await screenshot(page, 'settings-engine-paused');
    await page.getByRole('button', { name: 'Start workflow engine' }).click();
    await waitFor('the engine to run', async () => {
      const { json } = await api('GET', '/api/settings/status');
      return json.global_lock === false && json.global_status === 'RUNNING';
    }, 15000);
    await page.getByRole('button', { name: 'Pause workflow engine' }).waitFor({ timeout: 15000 }).catch((e) => { throw fail(e); });
  } finally {
    await page.close();
  }
});

test('the scheduled tasks page lists core\'s default schedules', async () => {
  // The host created them at start (docs/schedules.md); the page reads them with the GraphQL
  // query ScheduledTasks (page { id name nextRunTime trigger workflowId }), sorted by name.
  const name = 'Task Validate Awaiting Callbacks';
  const page = await newPage('metadata-scheduled-tasks-defaults');
  const listed = []; // the scheduledTasks pages the host answered to the browser
  page.on('response', async (res) => {
    if (!res.url().startsWith(run.hostBase) || !res.url().endsWith('/api/graphql')) return;
    try {
      const body = await res.json();
      if (body?.data?.scheduledTasks) listed.push(...body.data.scheduledTasks.page);
    } catch {
      // the body is gone once the page navigates; nothing to record
    }
  });
  try {
    const fail = (e) => new Error(`${e.message}${explain(page)}`);
    await page.goto(`${run.uiBase}/metadata/scheduled-tasks`, { waitUntil: 'domcontentloaded' });
    await waitFor(`"${name}" on the page`, async () => (await bodyText(page)).includes(name), 30000)
      .catch((e) => { throw fail(e); });
    const shown = await waitFor(`"${name}" in a ScheduledTasks answer`, () => listed.find((t) => t.name === name),
      10000).catch((e) => { throw fail(e); });
    await screenshot(page);
    assert.deepEqual(shownErrors(await bodyText(page)), [], `the page shows an error state${explain(page)}`);
    // The same schedule as the REST list has it: core's 30-second interval, linked to its task.
    const { status, json } = await api('GET', '/api/schedules');
    assert.equal(status, 200, 'GET /api/schedules');
    const stored = json.find((s) => s.name === name);
    assert.ok(stored, `GET /api/schedules has no "${name}": ${JSON.stringify(json.map((s) => s.name))}`);
    assert.equal(stored.source, 'default');
    assert.equal(stored.workflow_name, 'task_validate_awaiting_callbacks');
    assert.equal(shown.id, stored.id);
    assert.equal(shown.workflowId, stored.workflow_id);
    assert.equal(shown.trigger, 'interval[0:00:30]');
    assert.match(shown.nextRunTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  } finally {
    await page.close();
  }
});

// Every page of reference §6.1, with data from the example products and the seed:
// name (of the screenshot), route, texts that must show.
const PAGES = [
  ['start', () => '/', ['node seed-node (active)', 'node FRR']],
  ['subscriptions', () => '/subscriptions', ['node seed-node (active)']],
  ['subscription-detail', () => `/subscriptions/${run.seedSubscription}`, ['node seed-node (active)', 'seeded over REST']],
  ['workflows', () => '/workflows?activeTab=COMPLETED', ['ui_test_create_node']],
  ['workflow-detail', () => `/workflows/${run.seedProcess}`, ['Construct node']],
  ['workflow-new', () => `/workflows/new/ui_test_create_node?productId=${run.product.product_id}`, ['Node name']],
  ['tasks', () => '/tasks?activeTab=COMPLETED', ['ui_test_form_task']],
  ['task-detail', () => `/tasks/${run.seedTask}`, ['Record the answers']],
  ['task-new', () => '/tasks/new/ui_test_form_task', ['UI test: who']],
  ['metadata-products', () => '/metadata/products', ['node FRR', 'node Cisco']],
  ['metadata-productblocks', () => '/metadata/productblocks', ['node product block']],
  ['metadata-resource-types', () => '/metadata/resource-types', ['node_name']],
  ['metadata-workflows', () => '/metadata/workflows', ['create_node', 'Create node']],
  ['metadata-tasks', () => '/metadata/tasks', ['ui_test_form_task']],
  ['metadata-scheduled-tasks', () => '/metadata/scheduled-tasks', ['Scheduled']],
  ['settings', () => '/settings', ['Engine is RUNNING', 'Flush']],
];

for (const [name, route, expected] of PAGES) {
  test(`page ${name} renders with data and without error states`, async () => {
    await checkPage(name, route(), expected);
  });
}

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
