// The web UI's budgets, measured in headless Chromium against the real
// `baton serve` (issue 16):
//   - the bundle: index.html + app.js + app.css, gzipped (budget 200 KB);
//   - the runs list visible after navigation (budget 500 ms);
//   - a tune stage of T trials x E epochs (default 1,000 x 50): its table,
//     learning curves and parallel coordinates drawn (budget 2 s);
//   - sorting that table by the objective, click to repainted rows (budget
//     100 ms).
// The store is written by `bench_api --fill-only DIR` (a finished run with
// that tune stage, through the store's own API). Medians of --repeats.
//   node bench/web_ui.mjs [--build build] [--trials 1000] [--epochs 50] [--repeats 5] [--keep]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const { chromium } = await import(join(here, '../web/node_modules/playwright-core/index.mjs'));

const args = process.argv.slice(2);
const opt = (name, fallback) => { const i = args.indexOf('--' + name); return i >= 0 ? args[i + 1] : fallback; };
const build = resolve(opt('build', join(here, '../build')));
const trials = Number(opt('trials', 1000)), epochs = Number(opt('epochs', 50)), repeats = Number(opt('repeats', 5));
const keep = args.includes('--keep');
const baton = join(build, 'api/baton'), fill = join(build, 'bench/bench_api');
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const dir = mkdtempSync(join(tmpdir(), 'baton-bench-web-'));
const store = join(dir, 'store');
console.error(`filling ${store}: ${trials} trials x ${epochs} epochs`);
const filled = spawnSync(fill, ['--fill-only', store, '--trials', String(trials), '--epochs', String(epochs)], { encoding: 'utf8' });
if (filled.status !== 0) { console.error(filled.stdout, filled.stderr); process.exit(1); }
const runId = JSON.parse(filled.stdout.trim().split('\n').pop()).run_id;

const server = spawn(baton, ['--store', store, 'serve', '--port', '0', '--public-read'], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((ok, fail) => {
  let out = '';
  server.stdout.on('data', (d) => { out += d; const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/); if (m) ok(Number(m[1])); });
  server.on('exit', (code) => fail(new Error('baton serve exited ' + code)));
});
const base = `http://127.0.0.1:${port}`;
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const rows = [];
try {
  // Bundle: every file the build embeds in baton (build/api/web-dist: the
  // entry, its chunks, the stylesheet, index.html), gzipped at level 9 as
  // the server sends them to browsers that accept gzip.
  let gz = 0, raw = 0, count = 0;
  const dist = join(build, 'api/web-dist');
  for (const name of readdirSync(dist)) {
    const body = readFileSync(join(dist, name));
    raw += body.length;
    gz += gzipSync(body, { level: 9 }).length;
    count++;
  }
  rows.push([`bundle: all ${count} files, gzipped`, `${(gz / 1024).toFixed(1)} KB (${(raw / 1024).toFixed(0)} KB raw)`, '200 KB', gz <= 200 * 1024]);
  const first = ['index.html', 'app.js', 'app.css'];
  const home = readFileSync(join(dist, 'index.html'), 'utf8').match(/modulepreload" href="\/([^"]+)"/g) || [];
  let homeGz = 0;
  for (const name of first.concat(home.map((m) => m.match(/\/([^"]+)"$/)[1]))) homeGz += gzipSync(readFileSync(join(dist, name)), { level: 9 }).length;
  rows.push(['of which the runs list loads (index.html, app.js, app.css, preloaded chunk)', `${(homeGz / 1024).toFixed(1)} KB`, '', true]);

  const page = async () => {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const p = await ctx.newPage();
    const errors = [];
    p.on('pageerror', (e) => errors.push(e.message));
    return { p, ctx, errors };
  };
  // Time from navigation start until `ready()` holds, read in the page at
  // the first animation frame where it does.
  const until = (p, ready) => p.waitForFunction(ready, null, { polling: 'raf', timeout: 60000 }).then(() => p.evaluate(() => performance.now()));

  const runsList = [];
  for (let i = 0; i < repeats; i++) {
    const { p, ctx } = await page();
    await p.goto(base + '/', { waitUntil: 'commit' });
    runsList.push(await until(p, () => document.querySelector('[data-testid=runs-table] tbody tr[data-row]')));
    await ctx.close();
  }
  rows.push(['runs list visible after navigation', `${median(runsList).toFixed(0)} ms`, '500 ms', median(runsList) <= 500]);

  const tune = [], sort = [];
  for (let i = 0; i < repeats; i++) {
    const { p, ctx, errors } = await page();
    await p.goto(`${base}/runs/${runId}/stages/tune`, { waitUntil: 'commit' });
    tune.push(await until(p, () => document.querySelector('[data-testid=trials-table] tbody tr[data-row]') &&
      document.querySelector('[data-testid=curves] canvas') && document.querySelectorAll('[data-testid=parcoords] path').length > 100));
    // Sort by the objective, then the other way: the time from the click to
    // the frame where the first row has changed.
    sort.push(await p.evaluate(async () => {
      const first = () => document.querySelector('[data-testid=trials-table] tbody tr[data-row]').dataset.row;
      const header = document.querySelector('[data-testid=trials-table] th[data-key=objective]');
      const times = [];
      for (let k = 0; k < 2; k++) {
        const before = first();
        const t0 = performance.now();
        header.click();
        await new Promise((done) => { const check = () => (first() !== before ? done() : requestAnimationFrame(check)); requestAnimationFrame(check); });
        times.push(performance.now() - t0);
      }
      return Math.max(...times);
    }));
    if (errors.length) throw new Error('page errors: ' + errors.join('; '));
    await ctx.close();
  }
  rows.push([`tune stage of ${trials} trials x ${epochs} epochs: table, curves, parallel coordinates`, `${median(tune).toFixed(0)} ms`, '2000 ms', median(tune) <= 2000]);
  rows.push(['sort that table by the objective (click to repaint, worse of two directions)', `${median(sort).toFixed(0)} ms`, '100 ms', median(sort) <= 100]);
} finally {
  await browser.close();
  server.kill('SIGTERM');
  if (!keep) rmSync(dir, { recursive: true, force: true });
}
console.log(`\nWeb UI in headless Chromium (${repeats} repeats, medians; baton serve --public-read on loopback)\n`);
console.log('| measure | value | budget | within |');
console.log('|---|---|---|---|');
for (const [m, v, b, ok] of rows) console.log(`| ${m} | ${v} | ${b || '–'} | ${b ? (ok ? 'yes' : 'NO') : '–'} |`);
