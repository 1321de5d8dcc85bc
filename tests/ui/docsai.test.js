// docsai's admin pages in a real browser (the real binary, `--app docsai`, a fresh root,
// signed in as the SuperAdmin whose records these are): the Postman upload with its
// report, a workflow's executions and their log lines, paged, and the log lines of an
// execution appearing while they are written (the change feed, no reload). Every test
// fails on a console error or a CSP violation, and each page passes axe-core.
//
// Run (the binary first, under the shared lock):
//   flock /tmp/bb-cargo.lock cargo build -p bucketbase
//   cd tests/ui && flock /tmp/bb-cargo.lock node --test --test-concurrency=1 docsai.test.js
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launch, newPage, login, expectClean, expectAccessible } from './support.js';

/** A small Postman v2.1 collection file. */
function postmanFile(requests) {
  return Buffer.from(JSON.stringify({
    info: {
      _postman_id: '6f1d2c1e-8a4b-4c1d-9e4f-2b7c1a0d9e11',
      name: 'Petstore',
      schema: 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json',
    },
    item: requests.map(([name, method, url]) => ({ name, request: { method, url: { raw: url } } })),
  }));
}

describe('the docsai admin pages', () => {
  let server;
  let browser;
  let workflow;
  let executions;

  before(async () => {
    server = await Server.start(undefined, 'docsai');
    browser = await launch();
    workflow = await server.api('POST', '/api/v1/workflows', { name: 'Nightly sync', trigger_type: 'schedule' });
    // 21 executions: two pages of 20, newest first.
    executions = [];
    for (let i = 1; i <= 21; i++) {
      executions.push(await server.api('POST', `/api/v1/workflows/${workflow.id}/executions`, {
        status: i === 21 ? 'running' : 'success', mode: 'trigger', external_id: `run-${i}`,
      }));
    }
    // 55 lines on the newest: two pages of 50, the last one shown first.
    const newest = executions[20];
    for (let i = 1; i <= 55; i++) {
      await server.api('POST', `/api/v1/workflows/${workflow.id}/executions/${newest.id}/logs`, {
        level: 'info', node_key: 'fetch', message: `line ${i}`,
      });
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('imports a Postman file with a dry run first, and explains a bad file', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.getByRole('link', { name: 'Import Postman' }).click();
    const file = postmanFile([['List pets', 'GET', 'https://pets.example/pets'], ['Add a pet', 'POST', 'https://pets.example/pets']]);

    // The dry run reports and writes nothing.
    await page.getByLabel('Collection file').setInputFiles({ name: 'petstore.json', mimeType: 'application/json', buffer: file });
    assert.ok(await page.getByLabel('Dry run (write nothing)').isChecked(), 'a dry run by default');
    await page.getByRole('button', { name: 'Import' }).click();
    const report = page.locator('#import-report');
    await report.getByRole('heading', { name: 'Dry run of petstore.json: nothing was written' }).waitFor();
    assert.equal(await report.locator('.outcome').textContent(), 'created');
    const requests = report.getByRole('row', { name: /Requests/ });
    assert.deepEqual(await requests.getByRole('cell').allTextContents(), ['2', '0', '0', '0']);
    await expectAccessible(page);
    assert.equal((await server.api('GET', '/api/v1/api_collections')).length, 0, 'a dry run writes nothing');

    // The import itself, then the same file again: unchanged.
    await page.getByLabel('Collection file').setInputFiles({ name: 'petstore.json', mimeType: 'application/json', buffer: file });
    assert.ok(!(await page.getByLabel('Dry run (write nothing)').isChecked()), 'after a dry run the form imports');
    await page.getByRole('button', { name: 'Import' }).click();
    await report.getByRole('heading', { name: 'Imported petstore.json' }).waitFor();
    assert.equal(await report.locator('.outcome').textContent(), 'created');
    const stored = await server.api('GET', '/api/v1/api_collections');
    assert.equal(stored.length, 1);
    assert.equal(await report.getByRole('link', { name: 'Petstore' }).getAttribute('href'), `/admin/c/api_collections/${stored[0].id}`);

    await page.getByLabel('Collection file').setInputFiles({
      name: 'petstore.json', mimeType: 'application/json',
      buffer: postmanFile([['List pets', 'GET', 'https://pets.example/pets'], ['Add a pet', 'POST', 'https://pets.example/v2/pets']]),
    });
    await page.getByRole('button', { name: 'Import' }).click();
    await report.getByRole('heading', { name: 'Imported petstore.json' }).waitFor();
    assert.equal(await report.locator('.outcome').textContent(), 'updated');
    assert.deepEqual(await report.getByRole('row', { name: /Requests/ }).getByRole('cell').allTextContents(), ['0', '1', '0', '1']);

    // Bad files: the API's reason, on the form, with its status.
    await page.getByLabel('Collection file').setInputFiles({ name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from('not json at all') });
    let answer = page.waitForResponse((r) => r.url().endsWith('/admin/docsai/postman') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Import' }).click();
    assert.equal((await answer).status(), 400);
    const error = page.locator('#import-error');
    await error.getByText('notes.json was not imported.').waitFor();
    await error.getByText('not_json').waitFor();
    assert.equal(await page.locator('#import-report').count(), 0);

    await page.getByLabel('Collection file').setInputFiles({
      name: 'v1.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ id: 'x', name: 'Old', requests: [] })),
    });
    answer = page.waitForResponse((r) => r.url().endsWith('/admin/docsai/postman') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Import' }).click();
    assert.equal((await answer).status(), 400);
    await error.getByText('not_a_postman_collection').waitFor();
    await expectAccessible(page);
    assert.equal((await server.api('GET', '/api/v1/api_collections')).length, 1, 'a refused file writes nothing');
    expectClean(page);
  });

  it('pages a workflow\'s executions, newest first, and an execution\'s log lines', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.getByRole('link', { name: 'Workflows', exact: true }).click();
    await expectAccessible(page);
    await page.getByRole('link', { name: 'Nightly sync' }).click();
    const rows = page.locator('#executions tbody tr');
    assert.equal(await rows.count(), 20);
    await page.getByText('Page 1 of 2').waitFor();
    // Newest first: the running one (the 21st) heads the first page.
    assert.equal(await rows.first().locator('td').nth(1).textContent(), 'running');
    assert.equal(await rows.first().locator('td').nth(5).textContent(), '55');
    await expectAccessible(page);
    await page.getByRole('link', { name: 'Next' }).click();
    await page.getByText('Page 2 of 2').waitFor();
    assert.equal(await rows.count(), 1);
    await page.getByRole('link', { name: 'Previous' }).click();
    await page.getByText('Page 1 of 2').waitFor();

    // An execution opens on its newest lines (the last page).
    await rows.first().getByRole('link').click();
    await page.getByRole('heading', { name: 'Log lines (55), oldest first' }).waitFor();
    const lines = page.locator('#log-lines tr');
    assert.deepEqual(await lines.locator('td:nth-child(4)').allTextContents(), ['line 51', 'line 52', 'line 53', 'line 54', 'line 55']);
    await page.getByText('Page 2 of 2').waitFor();
    await expectAccessible(page);
    await page.getByRole('link', { name: 'Previous' }).click();
    await page.getByText('Page 1 of 2').waitFor();
    assert.equal(await lines.count(), 50);
    assert.equal(await lines.first().locator('td').nth(3).textContent(), 'line 1');

    // A page past the end is the last one.
    await page.goto(`${server.url}/admin/docsai/workflows/${workflow.id}/executions/${executions[20].id}?page=99`);
    await page.getByText('Page 2 of 2').waitFor();
    assert.equal(await lines.count(), 5);

    // Another owner's workflow, or none: a 404 page, not an error.
    const missing = await page.goto(`${server.url}/admin/docsai/workflows/${workflow.id}/executions/no-such-run`);
    assert.equal(missing.status(), 404);
    expectClean(page);
  });

  it('shows log lines while they are written, without a reload', async () => {
    const newest = executions[20];
    const page = await newPage(browser);
    await login(page, server);
    await page.goto(`${server.url}/admin/docsai/workflows/${workflow.id}/executions/${newest.id}`);
    const lines = page.locator('#log-lines tr');
    await page.getByRole('cell', { name: 'line 55', exact: true }).waitFor();
    await page.evaluate(() => { window.notReloaded = true; });
    // Written after the page read its lines: the feed resumes from that position.
    await server.api('POST', `/api/v1/workflows/${workflow.id}/executions/${newest.id}/logs`, {
      level: 'warning', node_key: 'store', message: 'line 56, live',
    });
    // A line of another execution does not belong here.
    await server.api('POST', `/api/v1/workflows/${workflow.id}/executions/${executions[0].id}/logs`, {
      message: 'elsewhere',
    });
    await server.api('POST', `/api/v1/workflows/${workflow.id}/executions/${newest.id}/logs`, {
      message: 'line 57, live',
    });
    await page.getByRole('cell', { name: 'line 57, live' }).waitFor();
    const live = lines.filter({ hasText: 'line 56, live' });
    assert.deepEqual(await live.locator('td').allTextContents().then((t) => t.slice(1)), ['warning', 'store', 'line 56, live']);
    assert.match(await live.locator('td').first().textContent(), /^\d{4}-\d\d-\d\dT/, 'the time the server set');
    assert.deepEqual((await lines.locator('td:nth-child(4)').allTextContents()).slice(-3), ['line 55', 'line 56, live', 'line 57, live']);
    assert.equal(await page.getByText('elsewhere').count(), 0);
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
    await expectAccessible(page);

    // A line changed or removed (by hand, or by retention) changes or leaves in place.
    const logs = `/api/v1/workflows/${workflow.id}/executions/${newest.id}/logs`;
    const all = await server.api('GET', `${logs}?page=2&per_page=50`);
    const [l55, l56] = [all.find((l) => l.message === 'line 55'), all.find((l) => l.message === 'line 56, live')];
    await server.api('PATCH', `${logs}/${l56.id}`, { message: 'line 56, corrected' });
    await page.getByRole('cell', { name: 'line 56, corrected' }).waitFor();
    await server.api('DELETE', `${logs}/${l55.id}`);
    await page.locator(`#log-lines tr[data-item-id="${l55.id}"]`).waitFor({ state: 'detached' });
    assert.deepEqual((await lines.locator('td:nth-child(4)').allTextContents()).slice(-3), ['line 54', 'line 56, corrected', 'line 57, live']);
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
    expectClean(page);

    // An execution with no lines yet: the first one replaces the empty row.
    const quiet = executions[1];
    await page.goto(`${server.url}/admin/docsai/workflows/${workflow.id}/executions/${quiet.id}`);
    await page.getByText('No log lines yet.').waitFor();
    await server.api('POST', `/api/v1/workflows/${workflow.id}/executions/${quiet.id}/logs`, { message: 'first words' });
    await page.getByRole('cell', { name: 'first words' }).waitFor();
    assert.equal(await page.getByText('No log lines yet.').count(), 0);
    expectClean(page);
  });
});
