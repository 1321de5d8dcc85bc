// Shared support of the admin UI's browser tests: the real `bucketbase` binary on a
// fresh root, Debian's chromium driven by playwright-core, and the checks every page
// passes (no console error, no CSP violation, no serious axe-core finding).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

export const BIN = process.env.BUCKETBASE_BIN ?? join(here, '..', '..', 'target', 'debug', 'bucketbase');
export const CHROMIUM = process.env.BUCKETBASE_CHROMIUM ?? '/usr/bin/chromium';
export const ADMIN = { email: 'admin@example.com', password: 'admin password for the ui tests' };
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** A `bucketbase serve --app <app>` process on `root` (a fresh temp root by default). */
export class Server {
  static async start(root, app = 'aristay') {
    const s = new Server();
    s.app = app;
    s.dir = root ? null : mkdtempSync(join(tmpdir(), 'bucketbase-ui-'));
    s.root = root ?? `file://${s.dir}/data`;
    s.env = {
      ...process.env,
      BUCKETBASE_AUTH__COOKIE_SECURE: 'false',
      BUCKETBASE_ADMIN_EMAIL: ADMIN.email,
      BUCKETBASE_ADMIN_PASSWORD: ADMIN.password,
      RUST_LOG: 'warn',
      // Every test signs in through the form, all from 127.0.0.1.
      BUCKETBASE_AUTH__LOGIN_PER_MINUTE: '10000',
    };
    await s.spawn();
    return s;
  }

  spawn() {
    this.child = spawn(BIN, ['serve', '--store', this.root, '--listen', '127.0.0.1:0', '--app', this.app], {
      env: this.env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the server did not start: ${out}`)), 30_000);
      this.child.stdout.on('data', (chunk) => {
        out += chunk;
        const m = out.match(/serving .* on (http:\/\/[0-9.:]+)/);
        if (m && !this.url) {
          clearTimeout(timer);
          this.url = m[1];
          resolve();
        }
      });
      this.child.on('exit', (code) => reject(new Error(`the server exited (${code}): ${out}`)));
    });
  }

  /** Stops the process (SIGTERM, a clean shutdown) and starts it again on the same root. */
  async restart() {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
    this.url = undefined;
    await this.spawn();
  }

  async stop() {
    if (this.child && this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** A user of the local provider, created with the CLI; returns its uuid. */
  async createUser(email, role, password = `${role} password for the ui tests`) {
    execFileSync(BIN, ['user', 'create', '--store', this.root, '--email', email, '--role', role], {
      env: { ...this.env, BUCKETBASE_PASSWORD: password },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // The server sees the new user once its log tailer has read the entry.
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${this.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password }),
      });
      if (r.ok) return { email, password, uuid: (await r.json()).data.user.uuid };
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`${email} cannot log in`);
  }

  /** The JSON API as the SuperAdmin (for setting up what a test is not about). */
  async api(method, path, body) {
    if (!this.token) {
      const r = await fetch(`${this.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(ADMIN),
      });
      this.token = (await r.json()).data.access_token;
    }
    const r = await fetch(`${this.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await r.json();
    assert.ok(r.ok, `${method} ${path}: ${JSON.stringify(json)}`);
    return json.data;
  }
}

/** Debian's chromium, headless, with a fresh profile (playwright makes one per launch). */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * A new page whose problems are recorded: console errors, page errors, CSP violations
 * (Chrome logs them to the console; the listener catches any it would not) and failed
 * requests. `page.problems()` lists them; `expectClean` asserts there are none.
 * `contextOptions` go to playwright's `newContext` (a phone's viewport, say).
 */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  const problems = [];
  // Pages answer with their real status (a refused form 409/412/422, a hidden record
  // 404), and Chrome reports a document's 4xx in the console. That one message repeats
  // the document's status, which the tests assert themselves; any other (a 4xx of a
  // script or a style, an error thrown, a CSP refusal) is a problem.
  const documentStatuses = new Set();
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.status() >= 400) documentStatuses.add(r.status());
  });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const status = m.text().match(/^Failed to load resource: the server responded with a status of (\d+)/);
    if (status && documentStatuses.has(Number(status[1])) && m.location().url === page.url()) return;
    problems.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A change-feed stream (EventSource) is open for as long as its page is: leaving the
    // page aborts it, by design. Any other failure of it, or of any request, counts.
    const aborted = r.failure()?.errorText === 'net::ERR_ABORTED';
    if (aborted && r.resourceType() === 'eventsource') return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.problems = () => problems;
  return page;
}

/** Asserts the page logged no console error and broke no CSP rule so far. */
export function expectClean(page) {
  assert.deepEqual(page.problems(), [], 'console errors or CSP violations');
}

/** Runs axe-core on the page: no serious or critical violation. */
export async function expectAccessible(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern (an
  // injected <script> would be refused by it, as it should be).
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `axe-core on ${page.url()}`);
}

/** Signs in through the login form. */
export async function login(page, server, user = ADMIN) {
  await page.goto(`${server.url}/admin/`);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${server.url}/admin/`);
}
