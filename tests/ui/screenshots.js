// Screenshots of the admin UI's main pages into docs/ui/ (run by scripts/screenshots,
// never by the tests): the real binary on a temp root with a little aristay data.
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, launch, login } from './support.js';

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
} finally {
  await browser.close();
  await server.stop();
}
