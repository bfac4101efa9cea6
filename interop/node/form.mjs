// Fills in and submits a web form in a real browser (headless Chromium driven by playwright-core),
// as a person would, and reports where the browser ended up. Used by test_openendpoints.py.
//
//   node form.mjs '{"url": "...", "fill": {...}, "check": [...], "set": {...}}'
//   echo '{...}' | node form.mjs
//
// The job (JSON, on argv[2] or else on stdin):
//   url        the page with the form; opened and waited for until `load`
//   fill       {name: text} typed into the form's text fields, as a person would (page.fill)
//   check      [{name, value}] checkboxes ticked by clicking them
//   set        {name: value} field values changed through the page's DOM before submitting,
//              for fields a person cannot type into (hidden inputs): tampering with the form
//   submit     a CSS selector for the button to click (default: the form's submit button)
//   chromium   the browser binary (default /usr/bin/chromium; never downloaded)
//   timeoutMs  the limit of each step (default 30000)
//
// It prints one JSON object on stdout:
//   form       {url, status} of the page the form came from
//   chain      every request of the navigation the click caused, in order: the form's submission
//              first, then each redirect followed: {method, url, status, location, contentType,
//              postData}
//   url        the URL the browser ended on
//   status     that page's HTTP status
//   text       that page's body text (document.body.innerText)
// Anything that goes wrong (no form, no navigation after the click, a timeout) is printed on
// stderr with exit status 1.

import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                       '--disable-background-networking', '--disable-component-update',
                       '--disable-sync'];

function readJob() {
  const text = process.argv[2] ?? readFileSync(0, 'utf8');
  const job = JSON.parse(text);
  if (typeof job.url !== 'string') {
    throw new Error('the job needs a "url"');
  }
  return job;
}

// A CSS attribute selector matching `name` exactly (a JSON string is a valid CSS string here).
function byName(name) {
  return `[name=${JSON.stringify(name)}]`;
}

// One request of the chain, with the answer it got.
async function describe(request) {
  const response = await request.response();
  const headers = await request.allHeaders();
  return {
    method: request.method(),
    url: request.url(),
    status: response ? response.status() : null,
    location: response ? (await response.headerValue('location')) : null,
    contentType: headers['content-type'] ?? null,
    postData: request.postData(),
  };
}

async function run(job) {
  const timeout = job.timeoutMs ?? 30000;
  const browser = await chromium.launch({
    executablePath: job.chromium ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
    timeout,
  });
  try {
    // The server's certificate is self-signed; the Python tests verify it with requests.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);

    const formResponse = await page.goto(job.url, { waitUntil: 'load' });
    const form = { url: page.url(), status: formResponse ? formResponse.status() : null };
    if (await page.locator('form').count() !== 1) {
      throw new Error(`expected one <form> on ${form.url} (HTTP ${form.status}), page says: `
                      + (await page.locator('body').innerText()).slice(0, 500));
    }

    for (const [name, text] of Object.entries(job.fill ?? {})) {
      await page.locator(`form ${byName(name)}`).fill(String(text));
    }
    for (const { name, value } of job.check ?? []) {
      await page.locator(`form input[type=checkbox]${byName(name)}[value=${JSON.stringify(value)}]`)
        .check();
    }
    for (const [name, value] of Object.entries(job.set ?? {})) {
      await page.locator(`form ${byName(name)}`)
        .evaluate((field, v) => { field.value = v; }, String(value));
    }

    // Wait for the navigation the click starts (through every redirect) to load.
    const submit = page.locator(job.submit ?? 'form [type=submit]');
    const [response] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      submit.click(),
    ]);
    if (!response) {
      throw new Error('the click caused no navigation with a response');
    }

    const requests = [];
    for (let request = response.request(); request; request = request.redirectedFrom()) {
      requests.unshift(request);
    }
    const chain = [];
    for (const request of requests) {
      chain.push(await describe(request));
    }
    return {
      form,
      chain,
      url: page.url(),
      status: response.status(),
      text: await page.locator('body').innerText(),
    };
  } finally {
    await browser.close();
  }
}

try {
  const result = await run(readJob());
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (error) {
  process.stderr.write(`form.mjs: ${error?.stack ?? error}\n`);
  process.exit(1);
}
