// aristay's admin pages in a real browser (the real binary, `--app aristay`, a fresh
// root): the auto-task template editor and its preview, the booking import with its dry
// run, the bookings calendar, and a staff member's tasks on a phone-sized screen. Every
// test fails on a console error or a CSP violation, and each page passes axe-core.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launch, newPage, login, expectClean, expectAccessible } from './support.js';
import { workbook } from './xlsx.js';

/** `YYYY-MM-DD`, `days` after today (UTC, the server's clock). */
function day(days) {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

// A 1x1 PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

describe('the aristay admin pages', () => {
  let server;
  let browser;
  let harbour;

  before(async () => {
    server = await Server.start();
    browser = await launch();
    harbour = await server.api('POST', '/api/v1/properties', { name: 'Harbour Flat', city: 'Porto' });
    await server.api('POST', '/api/v1/bookings', {
      property_id: harbour.id, check_in: day(3), check_out: day(6), guest_name: 'Zoe', source: 'airbnb', external_id: 'Z-1',
    });
    // Outside the preview's 30 days.
    await server.api('POST', '/api/v1/bookings', {
      property_id: harbour.id, check_in: day(60), check_out: day(62), guest_name: 'Yann', source: 'direct', external_id: 'Y-1',
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('previews the tasks an edited template would create, before saving it', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.getByRole('link', { name: 'Task templates' }).click();
    await page.getByRole('link', { name: 'New template' }).click();
    await page.getByLabel('Name').fill('Turnover');
    await page.getByLabel('Trigger', { exact: true }).selectOption('check_out');
    await page.getByLabel('Task title').fill('Turn {property.name} for {booking.owner');
    await page.getByRole('button', { name: 'Preview' }).click();
    // The automation's own check, beside its field.
    await page.locator('#e-title_pattern', { hasText: 'unclosed' }).waitFor();

    await page.getByLabel('Task title').fill('Turn {property.name} for {booking.guest_name}');
    await page.getByLabel('Offset (days after the trigger)').fill('1');
    await page.getByRole('button', { name: 'Preview' }).click();
    const preview = page.locator('#preview');
    await preview.getByRole('cell', { name: 'Turn Harbour Flat for Zoe' }).waitFor();
    await preview.getByRole('cell', { name: `${day(7)} 09:00` }).waitFor();
    assert.equal(await preview.getByText('Yann').count(), 0, 'a booking beyond 30 days');
    await expectAccessible(page);
    // Nothing is saved by a preview.
    assert.equal((await server.api('GET', '/api/v1/auto_task_templates')).length, 0);

    // A condition that no booking meets: no task.
    await page.getByLabel('At least (nights)').fill('5');
    await page.getByRole('button', { name: 'Preview' }).click();
    await preview.getByText('No tasks.').waitFor();
    await page.getByLabel('At least (nights)').fill('');

    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    await page.getByRole('link', { name: 'Turnover' }).click();
    assert.equal(await page.getByLabel('Task title').inputValue(), 'Turn {property.name} for {booking.guest_name}');
    const saved = await server.api('GET', '/api/v1/auto_task_templates');
    assert.equal(saved.length, 1);
    assert.equal(saved[0].offset_days, 1);
    // Editing the saved one previews with its id and saves with its version.
    await page.getByLabel('Task title').fill('Clean {property.name}');
    await page.getByRole('button', { name: 'Preview' }).click();
    await preview.getByRole('cell', { name: 'Clean Harbour Flat' }).waitFor();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    assert.equal((await server.api('GET', `/api/v1/auto_task_templates/${saved[0].id}`)).title_pattern, 'Clean {property.name}');
    // A second template of the same name: the API's unique rule, beside the name.
    await page.getByRole('link', { name: 'Task templates' }).click();
    await page.getByRole('link', { name: 'New template' }).click();
    await page.getByLabel('Name').fill('Turnover');
    await page.getByLabel('Task title').fill('Again');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Save' }).click(),
    ]);
    assert.equal(refused.status(), 409);
    await page.locator('#e-name').waitFor();
    assert.equal(await page.getByLabel('Task title').inputValue(), 'Again');
    expectClean(page);
  });

  it('imports a workbook: a dry run shows the bad rows by row number, then a partial import', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.getByRole('link', { name: 'Import bookings' }).click();
    const file = workbook([
      ['Listing', 'Arrival', 'Departure', 'Guest', 'Confirmation code', 'Channel'],
      ['Harbour Flat', '2027-03-01', '2027-03-04', 'Ana', 'HX-1', 'booking'],
      ['Harbour Flat', 'next tuesday', '2027-03-09', 'Ben', 'HX-2', 'booking'],
      ['Nowhere House', '2027-03-10', '2027-03-12', 'Cid', 'HX-3', 'booking'],
      ['Harbour Flat', '2027-03-20', '2027-03-22', 'Dee', 'HX-4', 'booking'],
    ]);
    await page.getByLabel('Workbook').setInputFiles({ name: 'march.xlsx', mimeType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', buffer: file });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByRole('heading', { name: 'Map the columns' }).waitFor();
    // The columns were guessed from the headers.
    assert.equal(await page.locator('#col-check_in').inputValue(), 'Arrival');
    assert.equal(await page.locator('#col-external_id').inputValue(), 'Confirmation code');
    await expectAccessible(page);
    // A mapping without a required column: the importer's refusal, the choices kept.
    await page.locator('#col-check_out').selectOption('');
    await page.getByRole('button', { name: 'Dry run' }).click();
    await page.getByRole('alert').getByText('invalid_mapping').waitFor();
    await page.getByRole('alert').getByText('missing_required: check_out').waitFor();
    assert.equal(await page.locator('#col-check_in').inputValue(), 'Arrival');
    await page.locator('#col-check_out').selectOption('Departure');
    await page.getByRole('button', { name: 'Dry run' }).click();
    await page.getByRole('heading', { name: 'Import bookings: dry run' }).waitFor();
    await page.locator('#import-summary').getByText('failed: 2').waitFor();
    // Rows by their number in the sheet (the header is row 1); the bad ones highlighted.
    assert.match(await page.locator('#row-3').getAttribute('class'), /row-error/);
    await page.locator('#row-3').getByText('Arrival').waitFor();
    assert.match(await page.locator('#row-4').getAttribute('class'), /row-error/);
    assert.equal(await page.locator('#row-2').getAttribute('class'), null);
    assert.equal(await page.locator('#row-5').getAttribute('class'), null);
    await expectAccessible(page);

    // All or nothing refuses the file; partial writes the good rows.
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.locator('#import-summary').getByText('nothing was written').waitFor();
    assert.equal((await server.api('GET', '/api/v1/bookings?external_id=HX-1')).length, 0);
    await page.getByLabel('Mode').selectOption('partial');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.getByRole('heading', { name: 'Import bookings: result' }).waitFor();
    await page.locator('#import-summary').getByText('created: 2').waitFor();
    await page.locator('#import-summary').getByText('failed: 2').waitFor();
    assert.equal((await server.api('GET', '/api/v1/bookings?external_id=HX-1')).length, 1);
    assert.equal((await server.api('GET', '/api/v1/bookings?external_id=HX-2')).length, 0);
    await page.getByRole('link', { name: 'The import log' }).waitFor();
    expectClean(page);
  });

  it('refuses a file that is not a workbook on the upload page', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.goto(`${server.url}/admin/aristay/import`);
    await page.getByLabel('Workbook').setInputFiles({ name: 'bookings.xlsx', mimeType: 'text/plain', buffer: Buffer.from('not a zip') });
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/admin/aristay/import') && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Upload' }).click(),
    ]);
    assert.equal(response.status(), 415);
    await page.getByRole('alert').waitFor();
    expectClean(page);
  });

  it('shows the bookings of a month on the calendar, with the months around it', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.getByRole('link', { name: 'Calendar', exact: true }).click();
    // Let the click's page load before going on: a goto now would abort it.
    await page.waitForURL(/\/admin\/aristay\/calendar$/);
    const bar = page.locator('.tl-bar', { hasText: 'Zoe' });
    // Zoe's stay may cross into next month; it starts in the month of day(3).
    await page.goto(`${server.url}/admin/aristay/calendar?month=${day(3).slice(0, 7)}`);
    await bar.waitFor();
    assert.match(await bar.getAttribute('class'), new RegExp(`cs-${Number(day(3).slice(8))}\\b`));
    await page.goto(`${server.url}/admin/aristay/calendar?month=2027-03`);
    await page.locator('.tl-bar', { hasText: 'Ana' }).waitFor();
    assert.match(await page.locator('.tl-bar', { hasText: 'Ana' }).getAttribute('class'), /cs-1 ce-4/);
    await expectAccessible(page);
    await page.getByRole('link', { name: 'Next month' }).click();
    await page.getByRole('heading', { name: 'Bookings, April 2027' }).waitFor();
    assert.equal(await page.locator('.tl-bar').count(), 0);
    await page.getByRole('link', { name: 'Previous month' }).click();
    await page.locator('.tl-bar', { hasText: 'Dee' }).waitFor();
    expectClean(page);
  });

  it('shows staff only their tasks on a phone, and lets them upload a photo and mark one done', async () => {
    const staff = await server.createUser('pia@example.com', 'staff');
    const mine = await server.api('POST', '/api/v1/tasks', { title: 'Fix the tap', property_id: harbour.id, assigned_to: staff.uuid, due_at: day(1) });
    await server.api('POST', '/api/v1/tasks', { title: 'Paint the fence', property_id: harbour.id, assigned_to: 'someone-else' });
    const page = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await login(page, server, staff);
    // Staff get their tasks, not the manager's pages.
    await page.getByRole('link', { name: 'My tasks' }).click();
    for (const name of ['Task templates', 'Import bookings', 'Calendar']) {
      assert.equal(await page.getByRole('link', { name, exact: true }).count(), 0, name);
    }
    const card = page.getByRole('article', { name: 'Fix the tap' });
    await card.waitFor();
    assert.equal(await page.getByRole('article', { name: 'Paint the fence' }).count(), 0);
    // Usable on the phone: nothing wider than the screen.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scrolling');
    await expectAccessible(page);

    await card.getByLabel('Photo', { exact: true }).setInputFiles({ name: 'tap.png', mimeType: 'image/png', buffer: PNG });
    await card.getByLabel('Caption').fill('Fixed');
    await card.getByRole('button', { name: 'Upload the photo of Fix the tap' }).click();
    await page.getByText('Photo uploaded.').waitFor();
    const link = page.getByRole('article', { name: 'Fix the tap' }).getByRole('link', { name: 'Fixed' });
    // The photo is served to its uploader's session.
    const served = await page.request.get(new URL(await link.getAttribute('href'), server.url).href);
    assert.equal(served.status(), 200);
    assert.equal(served.headers()['content-type'], 'image/png');
    const images = await server.api('GET', `/api/v1/task_images?task_id=${mine.id}`);
    assert.equal(images.length, 1);
    assert.equal(images[0].content_type, 'image/png');

    await page.getByRole('button', { name: 'Mark Fix the tap done' }).click();
    await page.getByText('Marked done.').waitFor();
    assert.equal(await page.getByRole('article', { name: 'Fix the tap' }).count(), 0, 'an open-task list');
    assert.equal((await server.api('GET', `/api/v1/tasks/${mine.id}`)).status, 'done');
    await page.getByRole('link', { name: 'All tasks' }).click();
    await page.getByRole('article', { name: 'Fix the tap' }).getByText('done', { exact: true }).waitFor();
    // Another person's task is the API's 404, on the page too.
    expectClean(page);
  });

  it('shows an owner the calendar of their properties only, and no import', async () => {
    const owner = await server.createUser('omar@example.com', 'owner');
    const other = await server.api('POST', '/api/v1/properties', { name: 'Other Villa' });
    await server.api('POST', '/api/v1/bookings', { property_id: other.id, check_in: '2027-03-02', check_out: '2027-03-05', guest_name: 'Eve', source: 'direct', external_id: 'E-1' });
    await server.api('POST', '/api/v1/property_ownerships', { property_id: harbour.id, user_id: owner.uuid });
    const page = await newPage(browser);
    await login(page, server, owner);
    assert.equal(await page.getByRole('link', { name: 'Import bookings' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Task templates' }).count(), 0);
    await page.getByRole('link', { name: 'Calendar', exact: true }).click();
    await page.goto(`${server.url}/admin/aristay/calendar?month=2027-03`);
    await page.locator('.tl-bar', { hasText: 'Ana' }).waitFor();
    assert.equal(await page.locator('.tl-bar', { hasText: 'Eve' }).count(), 0);
    assert.equal(await page.getByText('Other Villa').count(), 0);
    // The import page is the API's refusal, as a page; templates offer nothing to create.
    const response = await page.goto(`${server.url}/admin/aristay/import`);
    assert.equal(response.status(), 403);
    await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    await page.goto(`${server.url}/admin/aristay/templates`);
    await page.getByText('No templates yet.').waitFor();
    assert.equal(await page.getByRole('link', { name: 'New template' }).count(), 0);
    expectClean(page);
  });
});
