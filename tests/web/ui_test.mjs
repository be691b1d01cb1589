// End-to-end test of Baton's web UI in headless Chromium: a tiny real
// pipeline (prepare, tune with median pruning, ablate, train with init_from
// and a 2-seed compare) runs into a temporary store with real workers, then
// the real `baton serve` serves the UI and the API over loopback and
// playwright-core drives the pages. Every check is one node:test subtest;
// every page must log no console error. Screenshots of each page (1366x768,
// light; dark too for run, tune and checkpoint) go to --out; with
// --update-docs (or BATON_UPDATE_SCREENSHOTS=1) the light run, tune and
// checkpoint shots are also copied to docs/screenshots/ for the README.
//
//   node tests/web/ui_test.mjs --baton build/api/baton --worker build/stages/baton-worker \
//        --out build/web-screenshots [--update-docs] [--web-dir DIR] [--store DIR]
//
// --web-dir serves a UI folder (node web/build.mjs DIR --dev) instead of the
// one built into baton; --store reuses a store that already holds a run of
// ui-pipeline.json (the pipeline is not run again; the store is copied first).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const CHROMIUM = '/usr/bin/chromium';
const PLAYWRIGHT = path.join(REPO, 'web/node_modules/playwright-core/index.mjs');
const VIEWPORT = { width: 1366, height: 768 };
const WAIT = 30000;         // one page's content (generous: the machine may be busy)
const RUN_WAIT = 150000;    // a pipeline run

const { values: opt } = parseArgs({
  options: {
    baton: { type: 'string' }, worker: { type: 'string' }, out: { type: 'string' },
    'update-docs': { type: 'boolean', default: false }, 'web-dir': { type: 'string' }, store: { type: 'string' },
  },
});
const updateDocs = opt['update-docs'] || process.env.BATON_UPDATE_SCREENSHOTS === '1';
const OUT = path.resolve(opt.out || path.join(os.tmpdir(), 'baton-web-screenshots'));

// ---- child processes: each in its own process group, all killed on exit ----
const groups = new Set();
function killAll() {
  for (const pid of groups) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
  groups.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { killAll(); process.exit(128 + os.constants.signals[sig]); });

function startGroup(cmd, args, { env, logFile } = {}) {
  const log = logFile ? fs.openSync(logFile, 'a') : 'ignore';
  const child = spawn(cmd, args, { detached: true, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', log] });
  if (logFile) fs.closeSync(log);
  groups.add(child.pid);
  child.done = new Promise((resolve) => child.on('exit', (code, signal) => { groups.delete(child.pid); resolve({ code, signal }); }));
  return child;
}

async function stopGroup(child, ms = 15000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.done;
  try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
  const timer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, ms);
  const r = await child.done;
  clearTimeout(timer);
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* the group's stragglers */ }
  return r;
}

const tail = (file, n = 30) => {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n'); } catch { return '(no log)'; }
};

// `baton --store DIR serve --port 0 ...`: the port from its first line.
async function startServer(store, flags = []) {
  const logFile = path.join(store, '..', 'serve.log');
  const args = ['--store', store, 'serve', '--port', '0', '--max-runs', '1', '--workers', '2', ...flags];
  if (opt['web-dir']) args.push('--web-dir', path.resolve(opt['web-dir']));
  const child = startGroup(opt.baton, args, { env: { BATON_WORKER: path.resolve(opt.worker) }, logFile });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('baton serve printed no "listening on" line in 20 s:\n' + tail(logFile))), 20000);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(buf);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`baton serve exited (${code}):\n${tail(logFile)}`)); });
  });
  child.stdout.resume();
  const token = fs.readFileSync(path.join(store, 'api-token'), 'utf8').trim();
  return { child, port, token, base: `http://127.0.0.1:${port}`, stop: () => stopGroup(child) };
}

// ---- waiting: bounded polls, never fixed sleeps ----
async function until(what, fn, ms = WAIT, every = 100) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ': ' + last.message : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

async function api(server, p, { method = 'GET', body, headers = {}, token = true } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = 'Bearer ' + server.token;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(server.base + '/api/v1' + p, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

// ---- the fixture ----
let chromium, browser, dir, store, server, run, runJson;
const pipeline = JSON.parse(fs.readFileSync(path.join(HERE, 'ui-pipeline.json'), 'utf8'));

before(async () => {
  // Missing tools fail the test, never skip it.
  const missing = [];
  if (!opt.baton || !fs.existsSync(opt.baton)) missing.push(`the baton binary (--baton ${opt.baton || '?'})`);
  if (!opt.worker || !fs.existsSync(opt.worker)) missing.push(`the baton-worker binary (--worker ${opt.worker || '?'})`);
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (Debian's chromium)`);
  if (!fs.existsSync(PLAYWRIGHT)) missing.push(`${PLAYWRIGHT} (npm ci in web/)`);
  if (missing.length) throw new Error(`missing: ${missing.join('; ')}. Run scripts/install-deps (as root), then build.`);
  ({ chromium } = await import(pathToFileURL(PLAYWRIGHT).href));
  fs.mkdirSync(OUT, { recursive: true });

  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-ui-test-'));
  store = path.join(dir, 'store');
  if (opt.store) {
    fs.cpSync(path.resolve(opt.store), store, { recursive: true });
    for (const f of ['LOCK', 'serve.lock']) fs.rmSync(path.join(store, f), { force: true });
  } else {
    const logFile = path.join(dir, 'run.log');
    const child = startGroup(opt.baton, ['--store', store, 'run', path.join(HERE, 'ui-pipeline.json'), '--workers', '2', '--no-progress'],
      { env: { BATON_WORKER: path.resolve(opt.worker) }, logFile });
    child.stdout.pipe(fs.createWriteStream(path.join(dir, 'run.out')));
    const started = Date.now();
    const timer = setTimeout(() => stopGroup(child, 2000), RUN_WAIT);
    const r = await child.done;
    clearTimeout(timer);
    if (r.code !== 0) throw new Error(`baton run of ui-pipeline.json ended with ${r.code ?? r.signal}:\n${tail(logFile)}\n${tail(path.join(dir, 'run.out'))}`);
    console.log(`# the fixture's pipeline ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
  server = await startServer(store, ['--public-read']);
  const runs = await api(server, '/runs', { token: false });
  run = runs.runs.find((r) => r.pipeline === pipeline.name);
  assert.ok(run, `the store has no run of ${pipeline.name}`);
  assert.equal(run.status, 'succeeded', `the fixture run ${run.run_id} did not succeed`);
  runJson = await api(server, '/runs/' + run.run_id, { token: false });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  killAll();
  if (dir && !process.env.BATON_KEEP_UI_STORE) fs.rmSync(dir, { recursive: true, force: true });
  else if (dir) console.log('# store kept in', dir);
});

// ---- pages: console errors collected per page, checked per subtest ----
// One browser context for all (its HTTP cache keeps the bundle between
// checks); a tab per page, so each has its own sessionStorage (the token).
// allow: [{status, url: RegExp}]: expected failed requests (a validation's
// 400, a 401 before the token) that Chromium logs as console errors.
let context;
async function openPage(t, { token, allow = [], base } = {}) {
  if (!context) {
    context = await browser.newContext({ viewport: VIEWPORT, colorScheme: 'light', acceptDownloads: true });
    context.setDefaultTimeout(WAIT);
    context.setDefaultNavigationTimeout(2 * WAIT);
  }
  const page = await context.newPage();
  if (token) await withToken(page, token);
  const problems = [];
  const expected = (m) => {
    const s = /status of (\d+)/.exec(m.text());
    const url = m.location() && m.location().url;
    return s && url && allow.some((a) => a.status === Number(s[1]) && a.url.test(url));
  };
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !expected(m)) {
      problems.push(`${m.type()}: ${m.text()}${m.location() && m.location().url ? ' (' + m.location().url + ')' : ''} on ${page.url()}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message} on ${page.url()}`));
  page.base = base || server.base;
  page.go = (p) => page.goto(page.base + p, { waitUntil: 'domcontentloaded' });
  t.after(() => page.close());
  page.problems = problems;
  return page;
}

// Runs body(page, {t, open}) and then asserts that no page it opened logged
// a console error or warning; a failure saves a screenshot (failed-*.png).
function uiTest(name, body, opts = {}) {
  test(name, async (t) => {
    const pages = [];
    const open = async (o) => { const p = await openPage(t, { allow: opts.allow, ...o }); pages.push(p); return p; };
    const page = await open();
    try {
      await body(page, { t, open });
    } catch (e) {
      const extra = pages.flatMap((p) => p.problems);
      if (extra.length) e.message += '\nconsole:\n  ' + extra.join('\n  ');
      try { await page.screenshot({ path: path.join(OUT, 'failed-' + name.replace(/\W+/g, '-') + '.png') }); } catch { /* closed */ }
      throw e;
    }
    const problems = pages.flatMap((p) => p.problems);
    assert.deepEqual(problems, [], 'console errors or warnings');
  });
}

// The token in the tab's session storage before its scripts run (as the
// token dialog leaves it).
const withToken = (page, token) => page.addInitScript((tk) => sessionStorage.setItem('baton.token', tk), token);
const page$ = (page, name) => page.locator(`[data-page="${name}"]`).first();

// A screenshot of the first screen (light; dark too when asked) and one of
// the whole page, once the page's fonts and pending frames have settled.
async function shot(page, name, { dark = false } = {}) {
  await page.evaluate(() => document.fonts.ready.then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))));
  const file = path.join(OUT, name + '.png');
  await page.screenshot({ path: file });
  await page.screenshot({ path: path.join(OUT, name + '-full.png'), fullPage: true });  // the whole page, for review
  if (dark) {
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.screenshot({ path: path.join(OUT, name + '-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
  }
  if (updateDocs && ['run', 'tune', 'checkpoint'].includes(name)) {
    const docs = path.join(REPO, 'docs/screenshots');
    fs.mkdirSync(docs, { recursive: true });
    fs.copyFileSync(file, path.join(docs, name + '.png'));
  }
}

// Texts of one column of a DataTable (by its header's data-key).
async function column(page, table, key) {
  return table.evaluate((el, k) => {
    const ths = [...el.querySelectorAll('thead th')];
    const i = ths.findIndex((th) => th.dataset.key === k);
    if (i < 0) throw new Error(`no column ${k} (columns: ${ths.map((th) => th.dataset.key).join(', ')})`);
    return [...el.querySelectorAll('tbody tr[data-row]')].map((tr) => tr.children[i].textContent.trim());
  }, key);
}
const rowCount = (table) => table.locator('tbody tr[data-row]').count();
const stageOf = (name) => runJson.stages.find((s) => s.name === name);
const stageUrl = (name) => `/runs/${run.run_id}/stages/${name}`;

// ---- checks ----

uiTest('runs list shows the run', async (page) => {
  await page.go('/');
  const table = page$(page, 'runs').locator('[data-testid="runs-table"]');
  const row = table.locator(`tr[data-row="${run.run_id}"]`);
  await row.waitFor();
  await assert.doesNotReject(row.getByText('succeeded', { exact: true }).first().waitFor(), 'the run\'s status word');
  assert.match(await row.textContent(), new RegExp(pipeline.name));
  await shot(page, 'runs');
});

uiTest('run page shows every stage node with its status', async (page) => {
  await page.go('/runs/' + run.run_id);
  const dag = page$(page, 'run').locator('[data-testid="run-dag"]');
  await dag.waitFor();
  for (const name of Object.keys(pipeline.stages)) {
    const node = dag.locator(`g.node[data-node="${name}"]`);
    await node.waitFor();
    const want = stageOf(name).status;
    assert.equal(await node.getAttribute('data-status'), want, `stage ${name}'s node status`);
    assert.match(await node.textContent(), new RegExp(`\\b${want}\\b`), `stage ${name}'s node shows the word ${want}`);
  }
  assert.equal(await page.locator('.pagehead > .badge').first().textContent(), 'succeeded');
  await page.locator('[data-testid="warm-start"]').waitFor();
  await shot(page, 'run', { dark: true });
});

uiTest('prepare stage page shows its dataset', async (page) => {
  await page.go(stageUrl('prep'));
  await page$(page, 'prepare').locator('[data-testid="artifact-digest"]').waitFor();
  await shot(page, 'prepare');
});

// The curve chart: a uPlot canvas of non-zero size with non-blank pixels.
async function assertCanvasDrawn(page, scope) {
  const canvas = scope.locator('.uplot canvas').first();
  await canvas.waitFor();
  const info = await until('a drawn curve canvas', () => canvas.evaluate((c) => {
    if (!c.width || !c.height) return null;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
    return ink > 50 ? { w: c.width, h: c.height, ink } : null;
  }));
  assert.ok(info.w > 0 && info.h > 0 && info.ink > 50, JSON.stringify(info));
}

uiTest('tune page: table sorts by the objective, curves are drawn, brushing filters', async (page) => {
  await page.go(stageUrl('tune'));
  const tune = page$(page, 'tune');
  await tune.waitFor();
  const table = tune.locator('[data-testid="trials-table"]');
  await table.locator('tbody tr[data-row]').first().waitFor();
  const total = await rowCount(table);
  const trials = await api(server, `/runs/${run.run_id}/stages/tune/trials`, { token: false });
  assert.equal(total, trials.trials.length, 'one row per trial');
  // Median pruning stopped some trials: the table says so in words.
  const pruned = trials.trials.filter((x) => x.status === 'pruned').length;
  assert.ok(pruned > 0, 'the fixture\'s tune stage pruned a trial');
  assert.equal((await column(page, table, 'status')).filter((x) => x.startsWith('pruned')).length, pruned, 'pruned rows');

  // Sort by the objective: click its header, then again for the other way.
  const key = await table.evaluate((el) => {
    const th = el.querySelector('thead th[data-key="objective"]') || [...el.querySelectorAll('thead th')].find((x) => /val_accuracy|objective/i.test(x.textContent));
    return th && th.dataset.key;
  });
  assert.ok(key, 'the trials table has an objective column');
  const header = table.locator(`thead th[data-key="${key}"]`);
  for (let i = 0; i < 2; i++) {  // one way, then the other
    const before = await header.getAttribute('aria-sort');
    await header.click();
    const dir = await until('aria-sort on the objective column to change', async () => {
      const s = await header.getAttribute('aria-sort');
      return s !== before && (s === 'ascending' || s === 'descending') ? s : null;
    });
    const values = (await column(page, table, key)).map((s) => parseFloat(s)).filter((v) => Number.isFinite(v));
    assert.ok(values.length >= 2, `objective values in the table: ${values}`);
    const sorted = [...values].sort((a, b) => (dir === 'ascending' ? a - b : b - a));
    assert.deepEqual(values, sorted, `objective column ${dir}`);
  }

  await assertCanvasDrawn(page, tune.locator('[data-testid="curves"]'));
  await shot(page, 'tune', { dark: true });

  // Brushing: drag along the objective axis's upper part; fewer rows stay.
  const pc = tune.locator('[data-testid="parcoords"]');
  await pc.waitFor();
  const axis = pc.locator('[data-axis]').last();  // the objective is the last axis
  const box = await axis.boundingBox();
  assert.ok(box && box.height > 40, 'the objective axis has a height');
  await page.mouse.move(box.x + box.width / 2, box.y + 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.2, { steps: 5 });
  await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.4, { steps: 5 });
  await page.mouse.up();
  const after = await until('fewer rows after brushing', async () => {
    const n = await rowCount(table);
    return n < total ? n : null;
  });
  assert.ok(after >= 1, `the brush keeps the best trial (${after} of ${total} rows)`);
  await shot(page, 'tune-brushed');
  // The brush is view state in the URL: a reload keeps it.
  assert.match(new URL(page.url()).search, /brush=/);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await table.locator('tbody tr[data-row]').first().waitFor();
  await until('the brushed rows after a reload', async () => (await rowCount(table)) === after);
});

uiTest('ablation page shows its table', async (page) => {
  await page.go(stageUrl('ablate'));
  const table = page$(page, 'ablation').locator('[data-testid="ablation-table"]');
  await table.locator('tbody tr[data-row]').first().waitFor();
  const variants = await table.locator('tbody tr[data-row]').evaluateAll((trs) => trs.map((tr) => tr.dataset.row));
  for (const c of pipeline.stages.ablate.components) assert.ok(variants.some((v) => v.includes(c)), `a variant without ${c}: ${variants}`);
  assert.ok(variants.length >= pipeline.stages.ablate.components.length + 1, `base and variants: ${variants}`);
  await page.locator('[data-testid="impact-chart"]').waitFor();
  await shot(page, 'ablation');
});

uiTest('comparison page shows its table and curves', async (page) => {
  await page.go(stageUrl('train'));
  const cmp = page$(page, 'comparison');
  const table = cmp.locator('[data-testid="comparison-table"]');
  await table.locator('tbody tr[data-row]').first().waitFor();
  assert.ok(await rowCount(table) >= 2, 'the baseline and the init_from start');
  await assertCanvasDrawn(page, cmp.locator('[data-testid="comparison-chart"]'));
  await page$(page, 'train').locator('[data-testid="warm-start"]').waitFor();
  await shot(page, 'train');
  await cmp.evaluate((el) => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 60));  // below the sticky top bar
  await shot(page, 'comparison');
});

uiTest('checkpoint page: tensors, download, lineage link to the source trial', async (page) => {
  const train = stageOf('train');
  const init = train.resolved.init_from;
  const digest = init.checkpoint;
  await page.go('/checkpoints/' + digest);
  const ck = page$(page, 'checkpoint');
  const tensors = ck.locator('[data-testid="tensors-table"]');
  await tensors.locator('tbody tr[data-row]').first().waitFor();
  const manifest = await api(server, '/checkpoints/' + digest, { token: false });
  assert.equal(await rowCount(tensors), manifest.tensors.length, 'one row per tensor');
  const names = await tensors.locator('tbody tr[data-row]').evaluateAll((trs) => trs.map((tr) => tr.dataset.row));
  for (const t of manifest.tensors) assert.ok(names.includes(t.name), `tensor ${t.name} listed`);
  const graph = ck.locator('[data-testid="lineage-graph"]');
  await graph.locator('g.node').first().waitFor();
  await shot(page, 'checkpoint', { dark: true });

  // The safetensors download starts: a file of the checkpoint's bytes.
  const [download] = await Promise.all([page.waitForEvent('download'), ck.locator('[data-testid="download"]').click()]);
  assert.match(download.suggestedFilename(), /\.safetensors$/);
  const file = await download.path();
  const size = fs.statSync(file).size;
  assert.ok(size > manifest.total_bytes, `downloaded ${size} bytes (tensors: ${manifest.total_bytes})`);
  const head = fs.readFileSync(file).subarray(0, 8).readBigUInt64LE(0);
  assert.ok(head > 0n && head < BigInt(size), 'a safetensors header length');

  // The gc dry run on the graph: this checkpoint stays because the final
  // model started from it; the rest of its trial's epochs are marked too;
  // nothing is released by looking.
  await ck.locator('[data-testid="gc-overlay"]').click();
  await page.waitForURL(/[?&]gc=1/);
  const legend = ck.locator('[data-testid="gc-legend"]');
  await legend.locator('strong').waitFor();
  const me = graph.locator('g.node.current');
  await page.waitForFunction(() => document.querySelector('[data-testid="lineage-graph"] g.node.current[data-tag]'));
  assert.equal(await me.getAttribute('data-tag'), 'kept');
  assert.match(await me.locator('.tag-text').textContent(), /init_from/);
  const plan = await api(server, '/store/retention?checkpoints=' + digest, { token: false });
  assert.ok(plan.checkpoints[digest].reasons.includes('init_from'), JSON.stringify(plan));
  assert.match(await legend.textContent(), /would be released/);
  const tags = await graph.locator('g.node[data-tag]').evaluateAll((gs) => gs.map((g) => g.dataset.tag));
  assert.ok(tags.length >= 2, `tagged nodes: ${tags}`);
  await shot(page, 'checkpoint-gc', { dark: true });
  assert.equal((await api(server, '/checkpoints/' + digest, { token: false })).digest, digest, 'still served');

  // The source trial's node links to the trial.
  const link = graph.locator(`a[href="/trials/${init.trial_id}"]`).first();
  await link.waitFor();
  await link.click();
  await page.waitForURL(`**/trials/${init.trial_id}`);
  await page$(page, 'trial').waitFor();
  await shot(page, 'trial');
});

uiTest('a pipeline with an error shows it at its JSON pointer', async (page) => {
  await withToken(page, server.token);
  await page.go('/new');
  const doc = structuredClone(pipeline);
  doc.stages.train.epochs = -1;
  await page$(page, 'new').locator('[data-testid="pipeline-text"]').fill(JSON.stringify(doc, null, 2));
  await page.locator('[data-testid="validate"]').click();
  const item = page.locator('[data-testid="error-list"] li[data-pointer="/stages/train/epochs"]');
  await item.waitFor();
  assert.match(await item.textContent(), /epochs/);
  await shot(page, 'new');
}, { allow: [{ status: 400, url: /\/api\/v1\/pipelines$/ }] });

uiTest('store page shows sizes and a gc dry run', async (page) => {
  await page.go('/store');
  await page$(page, 'store').locator('[data-testid="store-totals"]').waitFor();
  await shot(page, 'store');
});

uiTest('deep links reload to the same page and back works', async (page) => {
  await page.go('/');
  await page.locator(`[data-testid="runs-table"] a[href="/runs/${run.run_id}"]`).click();
  await page$(page, 'run').waitFor();
  await page.locator('[data-testid="run-dag"] g.node[data-node="tune"]').click();
  await page.waitForURL(`**${stageUrl('tune')}`);
  await page$(page, 'stage').waitFor();
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page$(page, 'stage').waitFor();
  assert.equal(new URL(page.url()).pathname, stageUrl('tune'));
  await page.goBack();
  await page$(page, 'run').waitFor();
  assert.equal(new URL(page.url()).pathname, '/runs/' + run.run_id);
  await page.goBack();
  await page$(page, 'runs').waitFor();
  assert.equal(new URL(page.url()).pathname, '/');
  // (Every other check opens its page by its address, as a shared link would.)
});

// The rest needs the token: the server again, without --public-read.
uiTest('a token-protected server asks for the token, then shows the runs', async (page) => {
  await server.stop();
  server = await startServer(store);
  page.base = server.base;
  await page.go('/');
  const dialog = page.locator('[data-testid="token-dialog"]');
  await dialog.waitFor();
  await shot(page, 'token');
  await dialog.locator('input[type="password"]').fill(server.token);
  await dialog.locator('button[type="submit"]').click();
  await page.locator(`[data-testid="runs-table"] tr[data-row="${run.run_id}"]`).waitFor();
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('baton.token')), server.token);
  assert.ok(!page.url().includes(server.token), 'no token in the URL');
}, { allow: [{ status: 401, url: /\/api\/v1\// }] });

// Records every status word a badge shows (a MutationObserver in the page),
// so that a state shorter than a poll is not missed.
async function recordStatus(page, selector) {
  await page.evaluate((sel) => {
    window.__sameDocument = true;  // gone if the page reloads
    window.__seen = [];
    const read = () => {
      const b = document.querySelector(sel);
      const s = b && b.textContent.trim();
      if (s && window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s);
    };
    read();
    new MutationObserver(read).observe(document.body, { subtree: true, childList: true, characterData: true });
  }, selector);
  return () => page.evaluate(() => (window.__sameDocument ? window.__seen : null));
}

uiTest('live updates arrive while a second run executes', async (page, { open }) => {
  // The pipeline's tune stage again, its search space a little changed (a
  // tune stage of its own, nothing cached; the prepared data is reused).
  const doc = structuredClone(pipeline);
  const salt = Math.floor(Math.random() * 1e6);
  doc.name = 'ui-tiny-live';
  doc.stages = { prep: doc.stages.prep, tune: doc.stages.tune };
  doc.stages.tune.search_space.dropout.high = 0.5 - salt / 1e9;
  doc.stages.tune.budget = { max_trials: 4, max_parallel: 2, max_epochs: 3 };
  page.base = server.base;
  await withToken(page, server.token);
  await page.go('/');
  await page$(page, 'runs').locator('[data-testid="runs-table"]').waitFor();
  const list = await open({ token: server.token, base: server.base });
  await list.go('/store');
  await page$(list, 'store').waitFor();
  const created = await api(server, '/runs', { method: 'POST', body: { pipeline: doc }, headers: { 'Idempotency-Key': 'ui-test-live-' + salt } });
  const id = created.run_id;
  // In-app navigation (as a click on a link would), so the page follows the
  // run from its start even on a busy machine.
  const goInApp = (pg, p) => pg.evaluate((to) => { history.pushState(null, '', to); dispatchEvent(new PopStateEvent('popstate')); }, p);
  await goInApp(page, '/runs/' + id);
  await page$(page, 'run').locator('.pagehead > .badge').waitFor();
  const runSeen = await recordStatus(page, '[data-page="run"] .pagehead > .badge');
  await goInApp(list, '/');
  await list.locator(`[data-testid="runs-table"] tr[data-row="${id}"] .badge`).first().waitFor();
  const listSeen = await recordStatus(list, `[data-testid="runs-table"] tr[data-row="${id}"] .badge`);

  const seen = async (get, word) => { const s = await get(); assert.ok(s, 'the page was reloaded'); return s.includes(word) ? s : null; };
  await until('the run page to say running', () => seen(runSeen, 'running'), RUN_WAIT, 50)
    .catch(async (e) => { e.message += `; it showed ${await runSeen()}`; throw e; });
  await shot(page, 'run-live');
  const statuses = await until('the run page to say succeeded', () => seen(runSeen, 'succeeded'), RUN_WAIT);
  assert.equal(statuses[statuses.length - 1], 'succeeded', `run page statuses: ${statuses}`);
  await page.locator('[data-testid="run-ended"]').waitFor();
  const node = page.locator('[data-testid="run-dag"] g.node[data-node="tune"]');
  await until('the tune node to say succeeded', async () => (await node.getAttribute('data-status')) === 'succeeded');
  assert.ok(await runSeen(), 'the run page was not reloaded');

  const rows = await until('the runs list row to say succeeded', () => seen(listSeen, 'succeeded'), 20000);
  assert.ok(['pending', 'running'].includes(rows[0]), `the runs list first showed the run unfinished: ${rows}`);
  assert.equal(rows[rows.length - 1], 'succeeded', `runs list statuses: ${rows}`);
});
