/**
 * The drill report a person reads, in a real browser (Debian's headless Chromium): rendered from
 * a real drill's JSON report, stored beside it in every repository, the same through `lifeboat
 * report`. The page loads with no outside request, its chart has one bar per step, its figures are
 * the JSON's; a screenshot and a printed PDF stay under .lifeboat/test/ for a person to look at.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import Database from 'better-sqlite3';
import { projectRoot } from '../../src/dev/tools.js';
import type { DrillReport } from '../../workflows/drill.js';
import { launchChromium } from '../helpers/chromium.js';
import { createDatabase, createLifeboat, type Lifeboat } from '../helpers/lifeboat.js';

const outputDir = join(projectRoot, '.lifeboat', 'test');

describe('the HTML drill report in headless Chromium', () => {
  let lifeboat: Lifeboat;
  let browser: Browser;
  let drill: DrillReport;
  let json: string;
  let html: string;
  const requests: string[] = [];
  let page: Page;

  before(async () => {
    lifeboat = await createLifeboat('report');
    const dbPath = join(lifeboat.dir, 'shop.sqlite');
    createDatabase(dbPath, 1);
    const db = new Database(dbPath);
    db.exec("CREATE TABLE note (body TEXT); INSERT INTO note VALUES ('<script>alert(1)</script> & \"quotes\"')");
    db.close();
    await lifeboat.writeConfig(
      lifeboat.baseConfig({
        shop: {
          type: 'sqlite',
          path: dbPath,
          repositories: ['local', 's3'],
          drill: {
            rtoTargetSeconds: 600,
            rpoTargetSeconds: 3600,
            smokeChecks: [
              { name: 'events exist', sql: 'SELECT count(*) > 0 FROM events', expect: 1 },
              { name: 'recent kinds', sql: 'SELECT DISTINCT kind FROM events', minRows: 5 },
              { name: 'markup is text', sql: 'SELECT body FROM note' },
            ],
          },
        },
      }),
    );
    await lifeboat.startWorker();
    await lifeboat.run('backup', { target: 'shop' });
    drill = await lifeboat.run('drill', { target: 'shop' });
    assert.equal(drill.passed, true, JSON.stringify(drill.failure));
    const reports = join(lifeboat.dir, 'repository', 'shop', 'reports');
    json = await readFile(join(reports, `${drill.workflowId}.json`), 'utf8');
    html = await readFile(join(reports, `${drill.workflowId}.html`), 'utf8');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 900, height: 1200 } });
    // Any request the page makes is recorded and refused: a self-contained page makes none.
    page.on('request', (request) => requests.push(request.url()));
    await page.route('**/*', (route) => route.abort());
    await page.setContent(html, { waitUntil: 'load' });
  });

  after(async () => {
    await browser?.close();
    await lifeboat?.close();
  });

  test('the page is stored beside the JSON report in every repository, and `lifeboat report` renders the same page', async () => {
    assert.deepEqual(drill.reportKeys, [`local:shop/reports/${drill.workflowId}.json`, `s3:shop/reports/${drill.workflowId}.json`]);
    const out = join(lifeboat.dir, 'from-cli.html');
    const cli = await lifeboat.cli(['report', drill.workflowId, '--out', out]);
    assert.equal(cli.exitCode, 0, cli.all);
    assert.match(cli.all, new RegExp(`from local:shop/reports/${drill.workflowId}\\.json`));
    // The stored page names the key within the repository; the CLI names the repository too.
    assert.equal((await readFile(out, 'utf8')).replace(`local:shop/reports/`, 'shop/reports/'), html);
  });

  test('it loads without a single request: no script, font, stylesheet or image from anywhere', async () => {
    assert.deepEqual(requests, []);
    assert.equal(await page.locator('script, link, img, iframe, object').count(), 0);
    assert.equal(await page.getByText('<script>alert(1)</script> & \\"quotes\\"', { exact: false }).count(), 1, 'data from the database is shown as text, not markup');
  });

  test('the chart has one bar per step, with its duration, attempts and status', async () => {
    const { timeline } = JSON.parse(json) as DrillReport;
    const bars = page.locator('svg.timeline rect.bar');
    assert.equal(await bars.count(), timeline.length);
    for (const [index, step] of timeline.entries()) {
      const bar = bars.nth(index);
      assert.equal(await bar.getAttribute('data-duration-ms'), String(step.durationMs ?? 0));
      assert.equal(await bar.getAttribute('data-attempts'), String(step.attempts ?? 1));
      assert.equal(await bar.getAttribute('data-status'), step.status);
      assert.ok((await bar.boundingBox())!.width >= 2, `${step.name} is drawn`);
    }
    assert.deepEqual(await page.locator('svg.timeline g.step').evaluateAll((groups) => groups.map((g) => g.getAttribute('data-step'))), timeline.map((s) => s.name));
  });

  test('the figures are the JSON report\'s: verdict, backup, RTO and RPO against their objectives, checks, cleanup, sha256', async () => {
    const field = (name: string) => page.locator(`[data-field="${name}"]`);
    assert.equal(await field('verdict').textContent(), 'PASSED');
    assert.equal(await field('backup-id').textContent(), drill.backupId);
    assert.equal(await field('snapshot-at').textContent(), drill.snapshotAt);
    assert.equal(Number(await field('rto-seconds').getAttribute('data-value')), drill.rto!.seconds);
    assert.equal(await field('rto-seconds').textContent(), `${drill.rto!.seconds.toFixed(1)} s`);
    assert.equal(Number(await field('rto-objective').getAttribute('data-value')), 600);
    assert.equal(await field('rto-met').textContent(), 'met');
    assert.equal(Number(await field('rpo-seconds').getAttribute('data-value')), drill.rpo!.seconds);
    assert.equal(await field('rpo-met').textContent(), 'met');
    type Row = { querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }> };
    const rows = await page.locator('table.checks tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from((tr as unknown as Row).querySelectorAll('td'), (td) => td.textContent)));
    assert.deepEqual(rows, [
      ['events exist', '= 1', '1 (1 row)', 'pass'],
      ['recent kinds', 'at least 5 rows', '"order" (5 rows)', 'pass'],
      ['markup is text', 'the query runs', '"<script>alert(1)</script> & \\"quotes\\"" (1 row)', 'pass'],
    ]);
    assert.equal(await field('cleanup').textContent(), 'done: remove-scratch');
    assert.equal(await field('source-sha256').textContent(), createHash('sha256').update(json).digest('hex'));
  });

  test('a screenshot and a printed copy are kept for a person to look at', async () => {
    await mkdir(outputDir, { recursive: true });
    const screenshot = join(outputDir, 'report.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    await page.emulateMedia({ media: 'print' });
    const pdf = await page.pdf({ format: 'A4', printBackground: true });
    await writeFile(join(outputDir, 'report.pdf'), pdf);
    assert.ok((await readFile(screenshot)).length > 10_000);
    assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');
    assert.deepEqual(requests, [], 'printing made no request either');
  });
});
