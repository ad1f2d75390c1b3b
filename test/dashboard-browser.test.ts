// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core.
// While jobs run (two functions, some failing) on the local pool and on `pp-node` daemons on
// 127.0.0.1, the page must show the progress, a row per node, bars in the task stream and the
// events, and follow a node that comes and one that goes. Keeps a screenshot in
// test-artifacts/dashboard.png. Without chromium it skips, except under CI=true where it fails.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type Job, Server } from '../src/index.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';

const CHROMIUM = process.env.PP_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const SECRET = 'dashboard-test-secret-0123456789abcdef';
const missing = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set PP_CHROMIUM)`;
if (missing && process.env.CI === 'true') throw new Error(`CI=true: ${missing}`);

const nodes: NodeProcess[] = [];
const pageErrors: string[] = [];
let browser: Browser | null = null;
after(async () => {
  await browser?.close();
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});

function crunch(i: number): number {
  const end = Date.now() + 5 + (i % 4) * 5;
  while (Date.now() < end);
  return i;
}
function parse(i: number): number {
  const end = Date.now() + 8;
  while (Date.now() < end);
  if (i % 20 === 0) throw new RangeError(`record ${i} failed on purpose`);
  return i;
}

/** A port free now, for a node started later. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * Polls the page until `expr` (evaluated in the page) is true. (Not page.waitForFunction: it
 * evaluates its predicate with eval, which the page's Content-Security-Policy forbids, rightly;
 * page.evaluate goes through the DevTools protocol and is not subject to it.)
 */
async function until(page: Page, what: string, expr: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if ((await page.evaluate(expr)) === true) return;
    if (Date.now() > deadline) {
      const shown = await page.evaluate('document.body.innerText').catch(() => '?');
      throw new Error(
        `the page did not show ${what} within ${ms} ms; errors in the page: ${JSON.stringify(pageErrors)}; it shows:\n${shown}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
const cell = (node: string, cls: string) =>
  `document.querySelector('#nodes tr[data-node="${node}"] td.${cls.split(' ')[0]}')?.textContent`;
const eventShown = (kind: string, text: string) =>
  `[...document.querySelectorAll('#events li.${kind}')].some((li) => li.textContent.includes(${JSON.stringify(text)}))`;

test('the dashboard in Chromium while jobs run and nodes come and go', {
  skip: missing,
  timeout: 180_000,
}, async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const a = await startNode({ secret: SECRET, workers: 1, logLevel: 'info' });
  nodes.push(a);
  const bPort = await freePort();
  const idA = `127.0.0.1:${a.port}`;
  const idB = `127.0.0.1:${bPort}`;
  const server = new Server({ ncpus: 1, ppservers: [idA, idB], secret: SECRET, dashboard: 0 });
  server.on('node-error', () => {}); // B is not there yet: expected, and shown on the page
  let pumping = true;
  const jobs: Array<Promise<unknown>> = [];
  let i = 0;
  const pump = async () => {
    while (pumping) {
      while (server.progress().pending < 24) {
        const n = i++;
        const job: Job<number> = n % 2 ? server.submit(crunch, [n]) : server.submit(parse, [n]);
        jobs.push(job.catch(() => null));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const pumped = pump();
  try {
    const url = await server.dashboardUrl();
    assert.ok(url);
    await page.goto(url);
    await until(page, 'that it is live', `document.getElementById('status').textContent === 'live'`);
    // A node comes: B starts on the port the server keeps trying (with backoff: soon).
    const b = await startNode({ secret: SECRET, workers: 1, logLevel: 'info', port: bPort });
    nodes.push(b);

    await until(page, 'node A up', `${cell(idA, 'state')} === 'up'`);
    await until(page, 'the node-up event of A', eventShown('node-up', idA));
    await until(
      page,
      'the local pool running jobs',
      `Number(${cell('local', 'jobs')}?.replace(/,/g, '')) > 0`,
    );

    await until(page, 'node B up', `${cell(idB, 'state')} === 'up'`, 60_000);
    await until(page, 'the node-up event of B', eventShown('node-up', idB));
    const upEventsOfA = `[...document.querySelectorAll('#events li.node-up')].filter((li) => li.textContent.includes('${idA}')).length`;
    assert.equal(await page.evaluate(upEventsOfA), 1, 'each event shown once');
    await until(page, 'B running jobs', `Number(${cell(idB, 'jobs')}?.replace(/,/g, '')) > 0`);
    await until(page, 'a job error with its message', eventShown('job-error', 'failed on purpose'));
    await until(
      page,
      'progress of the default group',
      `/^[\\d,]+ \\/ [\\d,]+$/.test(document.querySelector('#groups tr[data-group="default"] td.done')?.textContent ?? '')`,
    );
    await until(
      page,
      'both functions in the legend',
      `['crunch', 'parse', 'failed'].every((f) => [...document.querySelectorAll('#legend span')].some((s) => s.textContent === f))`,
    );
    // Bars in the task stream: saturated pixels (axis, labels and background are grey).
    await until(
      page,
      'bars in the task stream',
      `(() => {
        const c = document.getElementById('stream');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          const mx = Math.max(d[i], d[i + 1], d[i + 2]), mn = Math.min(d[i], d[i + 1], d[i + 2]);
          if (d[i + 3] > 200 && mx - mn > 60) n++;
        }
        return n > 500;
      })()`,
    );
    const lanes = await page.evaluate(`document.getElementById('stream').clientHeight`);
    assert.ok(Number(lanes) > 3 * 14, 'lanes for 3 workers');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png` });

    // A node goes: A stops.
    await a.stop('SIGTERM');
    await until(page, 'node A down', `${cell(idA, 'state')} === 'down'`);
    await until(page, 'the node-down event of A', eventShown('node-down', idA));
    assert.equal(await page.evaluate(cell(idB, 'state')), 'up');

    pumping = false;
    await pumped;
    await Promise.all(jobs);
    await until(
      page,
      'the burst finished',
      `document.querySelector('#groups tr[data-group="default"] td.eta')?.textContent === 'done'`,
    );
    const shown = await page.evaluate(
      `document.querySelector('#groups tr[data-group="default"] td.done').textContent`,
    );
    const p = server.progress();
    assert.equal(shown, `${p.finished.toLocaleString('en-US')} / ${p.total.toLocaleString('en-US')}`);

    await server.close();
    await until(
      page,
      'that the server closed',
      `document.getElementById('status').textContent === 'the job server closed'`,
    );
    assert.deepEqual(pageErrors, []);
  } finally {
    pumping = false;
    await pumped;
    await server.close();
  }
});
