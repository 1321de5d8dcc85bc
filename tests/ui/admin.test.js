// The admin UI in a real browser: Debian's chromium driving the real binary
// (`bucketbase serve --app aristay` on a fresh root). Every test fails on a console
// error or a CSP violation; the main pages pass axe-core without a serious finding.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launch, newPage, login, expectClean, expectAccessible, ADMIN } from './support.js';

describe('the admin UI', () => {
  let server;
  let browser;
  const ids = {};

  before(async () => {
    server = await Server.start();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Creates a record through the generic "new" form; returns its id. */
  async function createThroughForm(page, collection, fill) {
    await page.goto(`${server.url}/admin/c/${collection}`);
    await page.getByRole('link', { name: 'New record' }).click();
    for (const [field, value] of Object.entries(fill)) {
      const input = page.locator(`#f-${field}`);
      if ((await input.evaluate((e) => e.tagName)) === 'SELECT') await input.selectOption(value);
      else await input.fill(value);
    }
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(/notice=created/);
    await assert.doesNotReject(page.getByText('Created.').waitFor());
    return new URL(page.url()).pathname.split('/').pop();
  }

  it('sends / to the login page, signs in and shows the dashboard', async () => {
    const page = await newPage(browser);
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/admin\/login/);
    await expectAccessible(page);
    await login(page, server);
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.getByRole('link', { name: 'bookings', exact: true }).waitFor();
    await page.getByText('Store: ready').waitFor();
    await expectAccessible(page);
    expectClean(page);
  });

  it('creates a template, a property and a booking, and shows the booking\'s automatic task', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await createThroughForm(page, 'auto_task_templates', {
      name: 'Turnover clean',
      trigger: 'check_out',
      title_pattern: 'Clean {property.name} after {booking.guest_name}',
    });
    ids.property = await createThroughForm(page, 'properties', { name: 'Seaside Loft', city: 'Porto' });
    ids.booking = await createThroughForm(page, 'bookings', {
      property_id: ids.property,
      check_in: '2026-07-01',
      check_out: '2026-07-05',
      guest_name: 'Ann',
    });
    await expectAccessible(page); // the record page
    await page.goto(`${server.url}/admin/c/tasks`);
    await page.getByLabel('Field').selectOption('booking_id');
    await page.getByLabel('equals').fill(ids.booking);
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('link', { name: 'Clean Seaside Loft after Ann' }).waitFor();
    await page.getByText('1 record.').waitFor();
    await expectAccessible(page); // the collection table
    expectClean(page);
  });

  it('shows the compile error of a CEL filter beside the filter', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.goto(`${server.url}/admin/c/bookings`);
    await page.getByLabel('CEL filter').fill('record.guest_name ==');
    await page.getByRole('button', { name: 'Apply' }).click();
    const error = page.locator('#filter-error');
    await error.waitFor();
    assert.match(await error.innerText(), /filter/i);
    await page.getByLabel('CEL filter').fill('record.guest_name == "Ann"');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByRole('link', { name: 'Ann' }).waitFor();
    expectClean(page);
  });

  it('restores a deleted booking from the trash within three clicks of the dashboard', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.goto(`${server.url}/admin/c/bookings/${ids.booking}`);
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByText('Deleted. It is in the trash').waitFor();

    await page.goto(`${server.url}/admin/`);
    let clicks = 0;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Trash' }).click();
    clicks++;
    await page.getByRole('heading', { name: 'Trash' }).waitFor();
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Restore Ann' }).click();
    clicks++;
    await page.getByText('Restored.').waitFor();
    assert.ok(clicks <= 3, `${clicks} clicks`);
    assert.equal(new URL(page.url()).pathname, `/admin/c/bookings/${ids.booking}`);
    // The history shows the delete and the restore.
    await page.getByRole('heading', { name: 'History' }).waitFor();
    assert.ok((await page.locator('.timeline > li').count()) >= 3);
    expectClean(page);
  });

  it('explains a restore that a unique rule refuses, with a link to the record in the way', async () => {
    const first = await server.api('POST', '/api/v1/properties', { name: 'Beach House' });
    await server.api('DELETE', `/api/v1/properties/${first.id}`);
    const second = await server.api('POST', '/api/v1/properties', { name: 'Beach House' });
    const page = await newPage(browser);
    await login(page, server);
    await page.goto(`${server.url}/admin/trash`);
    await page.getByLabel('Collection').selectOption('properties');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('button', { name: 'Restore Beach House' }).click();
    await page.getByRole('heading', { name: 'Cannot restore Beach House' }).waitFor();
    await page.getByText('properties_name').first().waitFor();
    await page.getByRole('link', { name: `properties/${second.id}` }).click();
    assert.equal(new URL(page.url()).pathname, `/admin/c/properties/${second.id}`);
    expectClean(page);
  });

  it('saves an edit, shows a refusal beside its field, and shows the diff in the audit', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.goto(`${server.url}/admin/c/properties/${ids.property}`);
    // A refusal (the name is required) is shown beside the field it names.
    await page.locator('#f-name').fill('');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#e-name').waitFor();
    await page.locator('#f-name').fill('Seaside Loft Deluxe');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    const diff = page.locator('.timeline .diff tr', { hasText: 'Seaside Loft Deluxe' }).first();
    assert.match(await diff.innerText(), /name\s+Seaside Loft\s+Seaside Loft Deluxe/);
    // As of the first version, the old name.
    await page.getByRole('link', { name: /^view as of/ }).last().click();
    await page.getByText('As of log position').waitFor();
    assert.match(await page.locator('table.kv').innerText(), /Seaside Loft\n/);

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).click();
    await page.getByLabel('Collection').fill('properties');
    await page.getByLabel('Source').fill('api');
    await page.getByRole('button', { name: 'Filter' }).click();
    const row = page.locator('.diff tr', { hasText: 'Seaside Loft Deluxe' }).first();
    assert.match(await row.innerText(), /name\s+Seaside Loft\s+Seaside Loft Deluxe/);
    await expectAccessible(page);
    const before = page.url();
    await page.getByRole('link', { name: 'Verify the chain' }).click();
    await page.getByText('The chain is intact.').waitFor();
    assert.equal(page.url(), before, 'htmx swapped the result in, no page load');
    expectClean(page);
  });

  it('lets the SuperAdmin read and edit a definition, showing what the API refuses', async () => {
    const page = await newPage(browser);
    await login(page, server);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Definitions' }).click();
    await expectAccessible(page);
    await page.getByRole('link', { name: 'properties', exact: true }).click();
    await page.getByLabel(/^Definition/).fill('{"schema": 5}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#definition-error').waitFor();
    await page.getByLabel(/^Definition/).fill('{"description": "Houses we run"}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    assert.match(await page.getByLabel(/^Definition/).inputValue(), /Houses we run/);
    expectClean(page);
  });

  /** Waits until the server holds `n` change-feed subscriptions (its /metrics gauge). */
  async function subscribers(n) {
    for (let i = 0; i < 100; i++) {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const m = text.match(/^bucketbase_feed_subscribers (\d+)/m);
      if (m && Number(m[1]) >= n) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`never ${n} feed subscribers`);
  }

  it('shows changes live on the dashboard and in a staff member\'s task list', async () => {
    const staff = await server.createUser('lee@example.com', 'staff');
    const page = await newPage(browser);
    await login(page, server);
    await page.getByRole('heading', { name: 'Live changes' }).waitFor();
    await subscribers(1);
    const cottage = await server.api('POST', '/api/v1/properties', { name: 'Live Cottage', city: 'Faro' });
    await page.locator('#live-changes a', { hasText: `properties/${cottage.id}` }).waitFor();

    const tasks = await newPage(browser);
    await login(tasks, server, staff);
    await tasks.goto(`${server.url}/admin/c/tasks`);
    await subscribers(2);
    await server.api('POST', '/api/v1/tasks', { title: 'Replace the bulb', property_id: ids.property, assigned_to: staff.uuid });
    await server.api('POST', '/api/v1/tasks', { title: 'Not for Lee', property_id: ids.property, assigned_to: 'someone-else' });
    await tasks.getByRole('link', { name: 'Replace the bulb' }).waitFor();
    assert.equal(tasks.url(), `${server.url}/admin/c/tasks`, 'the table was refreshed in place');
    assert.equal(await tasks.getByRole('link', { name: 'Not for Lee' }).count(), 0);
    await expectAccessible(page);
    expectClean(page);
    expectClean(tasks);
  });

  it('shows staff only their own tasks and lets them mark one done', async () => {
    const staff = await server.createUser('sam@example.com', 'staff');
    const mine = await server.api('POST', '/api/v1/tasks', { title: 'Fix the tap', property_id: ids.property, assigned_to: staff.uuid });
    await server.api('POST', '/api/v1/tasks', { title: 'Paint the fence', property_id: ids.property, assigned_to: 'someone-else' });
    const page = await newPage(browser);
    await login(page, server, staff);
    await page.goto(`${server.url}/admin/c/tasks`);
    await page.getByRole('link', { name: 'Fix the tap' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Paint the fence' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: /Clean Seaside/ }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'New record' }).count(), 0);
    await page.getByRole('link', { name: 'Fix the tap' }).click();
    await page.locator('#f-status').selectOption('done');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    assert.equal((await server.api('GET', `/api/v1/tasks/${mine.id}`)).status, 'done');
    // Staff have no delete on tasks: no button is offered.
    assert.equal(await page.getByRole('button', { name: 'Delete' }).count(), 0);
    await expectAccessible(page);
    expectClean(page);
  });

  it('shows an owner only their properties; another property is a 404 page', async () => {
    const owner = await server.createUser('olga@example.com', 'owner');
    await server.api('POST', '/api/v1/property_ownerships', { property_id: ids.property, user_id: owner.uuid });
    const other = await server.api('POST', '/api/v1/properties', { name: 'Mountain Cabin' });
    const page = await newPage(browser);
    await login(page, server, owner);
    await page.goto(`${server.url}/admin/c/properties`);
    await page.getByRole('link', { name: 'Seaside Loft Deluxe' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Mountain Cabin' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Beach House' }).count(), 0);
    const response = await page.goto(`${server.url}/admin/c/properties/${other.id}`);
    assert.equal(response.status(), 404);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    // Owners read, they do not edit.
    await page.goto(`${server.url}/admin/c/properties/${ids.property}`);
    assert.equal(await page.getByRole('button', { name: 'Save' }).count(), 0);
    expectClean(page);
  });

  it('keeps a session across a restart of the server on the same root', async () => {
    const page = await newPage(browser);
    await login(page, server);
    // Leave the dashboard first: its live feed would try to reconnect while the server is
    // down (as a browser does, by design), which this test is not about.
    await page.goto('about:blank');
    await server.restart();
    await page.goto(`${server.url}/admin/`);
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/admin/');
    // Signing out ends it.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/admin\/login/);
    await page.goto(`${server.url}/admin/trash`);
    await page.waitForURL(/\/admin\/login\?next=%2Fadmin%2Ftrash/);
    expectClean(page);
    assert.ok(ADMIN.email);
  });
});
