// Screenshots of the admin UI's main pages into docs/ui/ (run by scripts/screenshots,
// never by the tests): the real binary on a temp root with a little aristay data.
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, launch, login } from './support.js';
import { workbook } from './xlsx.js';

/** `YYYY-MM-DD`, `days` after today (UTC). */
function day(days) {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'ui');
mkdirSync(out, { recursive: true });

const server = await Server.start();
const browser = await launch();
try {
  await server.api('POST', '/api/v1/auto_task_templates', {
    name: 'Turnover clean', trigger: 'check_out', title_pattern: 'Clean {property.name} after {booking.guest_name}',
  });
  const loft = await server.api('POST', '/api/v1/properties', { name: 'Seaside Loft', city: 'Porto', bedrooms: 2 });
  await server.api('POST', '/api/v1/properties', { name: 'Mountain Cabin', city: 'Braga', bedrooms: 3 });
  const ann = await server.api('POST', '/api/v1/bookings', {
    property_id: loft.id, check_in: '2026-07-01', check_out: '2026-07-05', guest_name: 'Ann', source: 'airbnb', external_id: 'A-1',
  });
  await server.api('PATCH', `/api/v1/bookings/${ann.id}`, { guests: 3, notes: 'Late arrival' });
  const bob = await server.api('POST', '/api/v1/bookings', {
    property_id: loft.id, check_in: '2026-07-10', check_out: '2026-07-12', guest_name: 'Bob',
  });
  await server.api('DELETE', `/api/v1/bookings/${bob.id}`);
  const beach = await server.api('POST', '/api/v1/properties', { name: 'Beach House' });
  await server.api('DELETE', `/api/v1/properties/${beach.id}`);
  await server.api('POST', '/api/v1/properties', { name: 'Beach House' });

  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  const shot = async (name, path) => {
    if (path) await page.goto(`${server.url}${path}`);
    await page.screenshot({ path: join(out, `${name}.png`) });
    console.log(`docs/ui/${name}.png`);
  };
  await page.goto(`${server.url}/admin/login`);
  await shot('login');
  await login(page, server);
  await shot('dashboard', '/admin/');
  await shot('collection', '/admin/c/bookings?deleted=include');
  await shot('record', `/admin/c/bookings/${ann.id}`);
  await shot('trash', '/admin/trash');
  await page.getByRole('button', { name: 'Restore Beach House' }).click();
  await page.getByRole('heading', { name: 'Cannot restore Beach House' }).waitFor();
  await shot('restore-conflict');
  await page.goto(`${server.url}/admin/audit`);
  await page.getByRole('link', { name: 'Verify the chain' }).click();
  await page.getByText('The chain is intact.').waitFor();
  await shot('audit');
  await shot('definition', '/admin/definitions/bookings');

  // aristay's pages: bookings around today, a template previewed, an import's dry run.
  const cabin = (await server.api('GET', '/api/v1/properties?name=Mountain%20Cabin'))[0];
  const stays = [[loft, 1, 4, 'Carla', 'airbnb'], [loft, 4, 9, 'Dev', 'booking'], [loft, 12, 15, 'Eun', 'direct'],
    [cabin, 2, 8, 'Femi', 'airbnb'], [cabin, 10, 13, 'Gus', 'vrbo']];
  for (const [property, from, to, guest, source] of stays) {
    await server.api('POST', '/api/v1/bookings', {
      property_id: property.id, check_in: day(from), check_out: day(to), guest_name: guest, source, external_id: `S-${guest}`,
    });
  }
  await page.goto(`${server.url}/admin/aristay/templates/new`);
  await page.getByLabel('Name').fill('Arrival inspection');
  await page.getByLabel('Trigger', { exact: true }).selectOption('check_in');
  await page.getByLabel('Offset (days after the trigger)').fill('-1');
  await page.getByLabel('Task type').selectOption('inspection');
  await page.getByLabel('Task title').fill('Inspect {property.name} before {booking.guest_name}');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.locator('#preview table').waitFor();
  await shot('template-preview');
  await shot('calendar', `/admin/aristay/calendar?month=${day(1).slice(0, 7)}`);
  await page.goto(`${server.url}/admin/aristay/import`);
  await page.getByLabel('Workbook').setInputFiles({
    name: 'december.xlsx', mimeType: 'application/octet-stream', buffer: workbook([
      ['Listing', 'Arrival', 'Departure', 'Guest', 'Confirmation code', 'Channel'],
      ['Seaside Loft', day(20), day(23), 'Hana', 'HX-10', 'airbnb'],
      ['Seaside Loft', 'next friday', day(26), 'Ivo', 'HX-11', 'airbnb'],
      ['Mountain Cabin', day(21), day(24), 'Jon', 'HX-12', 'booking'],
      ['Nowhere House', day(22), day(25), 'Kai', 'HX-13', 'booking'],
      ['Mountain Cabin', day(22), day(23), 'Lea', 'HX-14', 'booking'],
    ]),
  });
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.getByRole('heading', { name: 'Map the columns' }).waitFor();
  await shot('import-mapping');
  await page.getByRole('button', { name: 'Dry run' }).click();
  await page.locator('#import-summary').waitFor();
  await shot('import-dry-run');

  // A staff member's tasks on a phone.
  const staff = await server.createUser('sam@example.com', 'staff');
  await server.api('POST', '/api/v1/tasks', { title: 'Fix the tap', type: 'maintenance', property_id: loft.id, assigned_to: staff.uuid, due_at: day(1), description: 'Kitchen sink drips.' });
  await server.api('POST', '/api/v1/tasks', { title: 'Clean Seaside Loft', type: 'cleaning', property_id: loft.id, assigned_to: staff.uuid, due_at: day(4), time_of_day: '11:00' });
  const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true })).newPage();
  await login(phone, server, staff);
  await phone.goto(`${server.url}/admin/aristay/my-tasks`);
  await phone.screenshot({ path: join(out, 'my-tasks-phone.png') });
  console.log('docs/ui/my-tasks-phone.png');
} finally {
  await browser.close();
  await server.stop();
}

// docsai's pages: a Postman import's report, a workflow's executions, an execution's logs.
{
  const docsai = await Server.start(undefined, 'docsai');
  const shots = await launch();
  try {
    const flow = await docsai.api('POST', '/api/v1/workflows', { name: 'Nightly CRM sync', trigger_type: 'schedule', is_active: true });
    let last;
    for (let i = 1; i <= 8; i++) {
      last = await docsai.api('POST', `/api/v1/workflows/${flow.id}/executions`, {
        status: i === 8 ? 'running' : (i === 5 ? 'error' : 'success'), mode: 'trigger',
        started_at: `2026-11-${String(20 + i).padStart(2, '0')}T02:00:00Z`,
        ...(i === 8 ? {} : { finished_at: `2026-11-${String(20 + i).padStart(2, '0')}T02:03:10Z` }),
      });
    }
    const steps = [['info', 'trigger', 'Schedule fired'], ['info', 'fetch', 'GET https://crm.example/api/contacts?since=2026-11-27: 200, 312 contacts'],
      ['warning', 'map', '3 contacts without an email, skipped'], ['info', 'store', 'Upserted 309 contacts'], ['debug', 'store', 'Batch 1 of 4 written']];
    for (const [level, node_key, message] of steps) {
      await docsai.api('POST', `/api/v1/workflows/${flow.id}/executions/${last.id}/logs`, { level, node_key, message });
    }
    const page = await (await shots.newContext({ viewport: { width: 1200, height: 800 } })).newPage();
    await login(page, docsai);
    await page.goto(`${docsai.url}/admin/docsai/postman`);
    await page.getByLabel('Collection file').setInputFiles({
      name: 'crm.postman_collection.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({
        info: { name: 'CRM API', schema: 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json' },
        item: [
          { name: 'Contacts', item: [{ name: 'List contacts', request: { method: 'GET', url: 'https://crm.example/api/contacts' } },
            { name: 'Create contact', request: { method: 'POST', url: 'https://crm.example/api/contacts' } }] },
          { name: 'Health', request: { method: 'GET', url: 'https://crm.example/health' } },
        ],
      })),
    });
    await page.getByRole('button', { name: 'Import' }).click();
    await page.locator('#import-report').waitFor();
    await page.screenshot({ path: join(out, 'docsai-postman-report.png') });
    console.log('docs/ui/docsai-postman-report.png');
    await page.goto(`${docsai.url}/admin/docsai/workflows/${flow.id}`);
    await page.screenshot({ path: join(out, 'docsai-workflow-executions.png') });
    console.log('docs/ui/docsai-workflow-executions.png');
    await page.goto(`${docsai.url}/admin/docsai/workflows/${flow.id}/executions/${last.id}`);
    await docsai.api('POST', `/api/v1/workflows/${flow.id}/executions/${last.id}/logs`, { level: 'info', node_key: 'store', message: 'Batch 2 of 4 written (live)' });
    await page.getByRole('cell', { name: 'Batch 2 of 4 written (live)' }).waitFor();
    await page.screenshot({ path: join(out, 'docsai-execution-logs.png') });
    console.log('docs/ui/docsai-execution-logs.png');
  } finally {
    await shots.close();
    await docsai.stop();
  }
}
