// A transparent HTTP proxy that records every request it forwards (method, headers, JSON body) and the
// response status. Responses, SSE included, are streamed through untouched. Used to observe what the
// gateway sends to an HTTP upstream.
import http from 'node:http';

export async function startWireProxy(targetPort, { host = '127.0.0.1' } = {}) {
  const log = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let body;
      try { body = raw.length ? JSON.parse(raw.toString('utf8')) : undefined; } catch { body = raw.toString('utf8'); }
      const entry = { method: req.method, url: req.url, headers: { ...req.headers }, body, status: undefined };
      log.push(entry);
      const up = http.request({ host, port: targetPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        entry.status = ur.statusCode;
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', (e) => { entry.status = 502; entry.error = e.message; if (!res.headersSent) res.writeHead(502); res.end(); });
      up.end(raw);
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, host, r));
  return {
    port: server.address().port,
    log,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(() => r()));
    },
  };
}
