// Browser benchmark in headless Chromium: per-call cost of gateway.request to an in-page tool, and a
// tools/call through the package to the native host next to the official TypeScript SDK client
// making the same call to the same host; and the durable enqueue rate of the offline queue on
// IndexedDB next to memory. Interleaved rounds, medians. Prints markdown.
// Usage: node bench/browser_bench.mjs GATEWAY_BIN [calls] [rounds]
import { bundleSdk, startGateway, stopGateway, startWeb, launchChromium } from '../tests/harness.mjs';

const [gatewayBin, callsArg, roundsArg] = process.argv.slice(2);
const CALLS = Number(callsArg ?? 500);
const ROUNDS = Number(roundsArg ?? 5);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

await bundleSdk('sdk-bench.js', [['Client', 'client/index.js'], ['StreamableHTTPClientTransport', 'client/streamableHttp.js']]);
const gw = await startGateway(gatewayBin, { prefix: false });
const web = await startWeb();
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${web.port}/www/bench/bench.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 30000 });
  const url = `http://127.0.0.1:${gw.port}/mcp`;
  const r = { inPage: [], pkg: [], sdk: [] };
  for (let i = 0; i < ROUNDS; i++) {
    r.inPage.push(await page.evaluate((n) => window.bench.inPage(n), CALLS * 4));
    r.pkg.push(await page.evaluate(([u, n]) => window.bench.viaPackage(u, n), [url, CALLS]));
    r.sdk.push(await page.evaluate(([u, n]) => window.bench.viaSdk(u, n), [url, CALLS]));
  }
  const q = {};
  for (let i = 0; i < ROUNDS; i++) {
    for (const par of [1, 16]) {
      for (const storage of ['indexeddb', 'memory']) {
        (q[`${storage} ${par}`] ??= []).push(await page.evaluate(([s, n, p]) => window.bench.enqueue(s, n, p), [storage, CALLS, par]));
      }
    }
  }
  const [inPage, pkg, sdk] = [median(r.inPage), median(r.pkg), median(r.sdk)];
  console.log(`Headless Chromium, ${ROUNDS} interleaved rounds, medians:\n`);
  console.log('| browser case | per call |\n|---|---|');
  console.log(`| gateway.request → in-page tool (${CALLS * 4} calls) | ${inPage.toFixed(1)} µs |`);
  console.log(`| tools/call through the package → native host → stdio echo (${CALLS} calls) | ${(pkg / 1000).toFixed(3)} ms |`);
  console.log(`| same call with the official TS SDK client → native host (${CALLS} calls) | ${(sdk / 1000).toFixed(3)} ms |`);
  console.log(`| package vs SDK client | ${(pkg / sdk).toFixed(2)}× the time |`);
  console.log(`\nDurable enqueue in the browser (${CALLS} queued calls per round, medians):\n`);
  console.log('| store | in flight | queued calls/s | vs memory |\n|---|---|---|---|');
  for (const par of [1, 16]) {
    for (const storage of ['indexeddb', 'memory']) {
      const v = median(q[`${storage} ${par}`]);
      console.log(`| ${storage} | ${par} | ${v.toFixed(0)} | ${(v / median(q[`memory ${par}`])).toFixed(2)}× |`);
    }
  }
} finally {
  await browser.close();
  web.close();
  await stopGateway(gw);
}
