// A thin line-protocol driver for headless Chromium, used by the Rust
// dashboard tests (tests/it/dashboard.rs). The test logic and its assertions
// live in Rust; this only does what one JSON command per stdin line asks and
// answers one JSON line on stdout: {"ok":true,"value":…} or {"ok":false,"error":"…"}.
//
// It also watches the page the whole time: console errors, uncaught page
// errors and every request that leaves 127.0.0.1 are collected and returned by
// the `problems` command.
//
//   node driver.mjs            # then type e.g. {"cmd":"open","url":"http://127.0.0.1:3000/"}
//
// Environment: CHROMIUM (default /usr/bin/chromium), DRIVER_TIMEOUT_MS
// (default 180000; the browser is closed and the process exits after it).
//
// It is not a test runner: there is nothing to run on its own here.

import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const overallTimeout = Number(process.env.DRIVER_TIMEOUT_MS || 180000);
const userDataDir = mkdtempSync(join(tmpdir(), 'buoycast-chromium-'));

const problems = { consoleErrors: [], pageErrors: [], foreignRequests: [], failedRequests: [] };
const requests = [];

function reply(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function local(url) {
  if (url.startsWith('data:') || url.startsWith('about:') || url.startsWith('blob:')) return true;
  try {
    return new URL(url).hostname === '127.0.0.1';
  } catch (_) {
    return false;
  }
}

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
  ],
  viewport: { width: 1360, height: 900 },
  timeout: 30000,
});

let finished = false;
async function finish(code) {
  if (finished) return;
  finished = true;
  try {
    await context.close();
  } catch (_) { /* already gone */ }
  rmSync(userDataDir, { recursive: true, force: true });
  process.exit(code);
}
setTimeout(() => {
  process.stderr.write(`driver: overall timeout of ${overallTimeout} ms reached\n`);
  finish(2);
}, overallTimeout).unref();
process.on('SIGTERM', () => finish(3));

const page = context.pages()[0] || (await context.newPage());
context.on('request', (request) => {
  requests.push({ method: request.method(), url: request.url() });
  if (!local(request.url())) problems.foreignRequests.push(request.url());
});
context.on('requestfailed', (request) => {
  problems.failedRequests.push({ url: request.url(), error: request.failure()?.errorText ?? '' });
});
page.on('console', (message) => {
  if (message.type() === 'error') {
    problems.consoleErrors.push({ text: message.text(), url: message.location()?.url ?? '', at: Date.now() });
  }
});
page.on('pageerror', (error) => problems.pageErrors.push(String(error && error.stack ? error.stack : error)));

/** Waits until `selector` matches an element whose text contains `text` and/or whose attribute `attr` is `value`. */
async function waitFor({ selector, text, attr, value, count, timeoutMs = 15000 }) {
  try {
    await page.waitForFunction(
      ({ selector, text, attr, value, count }) => {
        const nodes = [...document.querySelectorAll(selector)];
        if (count !== undefined && count !== null) return nodes.length === count;
        return nodes.some((node) =>
          (text === undefined || text === null || (node.textContent || '').includes(text)) &&
          (attr === undefined || attr === null || node.getAttribute(attr) === value));
      },
      { selector, text, attr, value, count },
      { timeout: timeoutMs, polling: 50 },
    );
  } catch (error) {
    const seen = await page.evaluate(({ selector, attr }) => [...document.querySelectorAll(selector)].slice(0, 10)
      .map((node) => ({ text: (node.textContent || '').trim().slice(0, 300), attr: attr ? node.getAttribute(attr) : undefined })),
    { selector, attr });
    throw new Error(`waited ${timeoutMs} ms for ${JSON.stringify({ selector, text, attr, value, count })}; matching now: ${JSON.stringify(seen)}`);
  }
  return true;
}

const commands = {
  open: async ({ url }) => {
    const response = await page.goto(url, { waitUntil: 'domcontentloaded' });
    return { status: response ? response.status() : null };
  },
  waitFor,
  text: async ({ selector }) => page.locator(selector).first().textContent(),
  texts: async ({ selector }) => page.locator(selector).allTextContents(),
  attr: async ({ selector, name }) => page.locator(selector).first().getAttribute(name),
  count: async ({ selector }) => page.locator(selector).count(),
  visibleCount: async ({ selector }) => page.evaluate((selector) =>
    [...document.querySelectorAll(selector)].filter((node) => node.offsetParent !== null).length, selector),
  fill: async ({ selector, value }) => page.locator(selector).fill(value),
  click: async ({ selector }) => page.locator(selector).click(),
  focus: async ({ selector }) => page.locator(selector).focus(),
  press: async ({ key }) => page.keyboard.press(key),
  focused: async () => page.evaluate(() => {
    const node = document.activeElement;
    return node ? (node.id || node.tagName.toLowerCase()) : null;
  }),
  viewport: async ({ width, height }) => page.setViewportSize({ width, height }),
  scrollWidth: async () => page.evaluate(() => document.documentElement.scrollWidth),
  screenshot: async ({ path, fullPage = false }) => {
    await page.screenshot({ path, fullPage });
    return path;
  },
  requests: async () => requests,
  problems: async () => problems,
  close: async () => {
    reply({ ok: true, value: null });
    await finish(0);
  },
};

const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
reply({ ok: true, value: 'ready' });
for await (const line of input) {
  if (!line.trim()) continue;
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    reply({ ok: false, error: `not JSON: ${line}` });
    continue;
  }
  const handler = commands[command.cmd];
  if (!handler) {
    reply({ ok: false, error: `unknown command ${command.cmd}` });
    continue;
  }
  try {
    const value = await handler(command);
    reply({ ok: true, value: value === undefined ? null : value });
  } catch (error) {
    reply({ ok: false, error: String(error && error.message ? error.message : error) });
  }
}
// stdin closed: the test is over (or died).
await finish(0);
