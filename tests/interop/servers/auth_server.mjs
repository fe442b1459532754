// A real OAuth 2.1 authorization server for the gateway's auth tests: npm `oidc-provider` (OpenID
// Certified), configured to issue RFC 9068 JWT access tokens (`typ: at+jwt`, RS256) through the
// client_credentials grant with RFC 8707 resource indicators.
//
//   node servers/auth_server.mjs --config FILE [--port N] [--log FILE]
//
// Listens on 127.0.0.1 (port 0, the default, picks a free one). Once it accepts connections it prints
// one JSON line on stdout:
//   {"issuer": "http://127.0.0.1:<port>", "port": <port>, "token_endpoint": ..., "jwks_uri": ..., "kids": [...]}
// Everything else it says goes to stderr.
//
// The config file (JSON; every key optional except clients and resources):
//   {
//     "issuer": "http://127.0.0.1:9999",   // default http://127.0.0.1:<port>; another value makes an
//                                          // impostor that claims someone else's issuer in its tokens
//     "kid": "as-key-1",                   // the kid of the RSA key generated at start (default random);
//     "jwks": {"keys": [<private JWK>...]},// or the keys themselves (then "kid" is ignored)
//     "access_token_ttl": 600,             // seconds (default 600)
//     "clients": [{"client_id": "c", "client_secret": "s", "scope": "mcp mcp:admin"}...],
//     "resources": {"http://127.0.0.1:8787/mcp": {"scope": "mcp mcp:admin", "ttl": 300}...},
//     "expired_clients": ["c2"],           // tokens of these clients are issued already expired:
//                                          //   iat two hours ago, exp one hour ago
//     "not_yet_valid_clients": ["c3"]      // tokens of these carry nbf one hour from now
//   }
// Each known resource is a Resource Server whose tokens are JWTs with aud = the resource, scope = the
// requested scopes the client may have that the resource knows. A token request for an unknown
// resource gets `invalid_target`. A request without a resource gets an opaque token (oidc-provider's
// default), which is not what the gateway accepts.
//
// Every scope named by a client or a resource is a scope of the provider, so a client asking for a
// scope outside its own `scope` gets `invalid_scope`.
//
// With --log FILE every token request is appended to FILE as one JSON line:
//   {"client_id", "grant_type", "resource", "scope", "status", "granted_scope"}
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';

function parseArgs(argv) {
  const out = { port: Number(process.env.AUTH_SERVER_PORT ?? 0), config: process.env.AUTH_SERVER_CONFIG, log: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    if (a === '--port') out.port = Number(next());
    else if (a === '--config') out.config = next();
    else if (a === '--log') out.log = next();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.config) throw new Error('--config FILE is required');
  return out;
}

function generatedJwks(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: kid ?? crypto.randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' }] };
}

const args = parseArgs(process.argv.slice(2));
const cfg = JSON.parse(fs.readFileSync(args.config, 'utf8'));
const clients = cfg.clients ?? [];
const resources = cfg.resources ?? {};
const expired = new Set(cfg.expired_clients ?? []);
const notYetValid = new Set(cfg.not_yet_valid_clients ?? []);
const ttl = Number(cfg.access_token_ttl ?? 600);
const jwks = cfg.jwks ?? generatedJwks(cfg.kid);

const allScopes = new Set(['openid']);
for (const c of clients) for (const s of (c.scope ?? '').split(' ').filter(Boolean)) allScopes.add(s);
for (const r of Object.values(resources)) for (const s of (r.scope ?? '').split(' ').filter(Boolean)) allScopes.add(s);

function logLine(entry) {
  if (args.log) fs.appendFileSync(args.log, `${JSON.stringify(entry)}\n`);
}

// Bind first, so port 0 can be resolved before the provider (whose issuer includes the port) exists.
let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(args.port, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = cfg.issuer ?? `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  jwks,
  clients: clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: c.scope ?? '',
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
  })),
  scopes: [...allScopes],
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // No resource in the request: no default (the token would be opaque, for the userinfo endpoint).
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        const rs = resources[resourceIndicator];
        if (!rs) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        return {
          scope: rs.scope ?? '',
          audience: resourceIndicator,
          accessTokenTTL: Number(rs.ttl ?? ttl),
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: {
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl,
  },
  formats: {
    customizers: {
      // Real tokens of this server, signed with its key, only with the times moved.
      jwt: (_ctx, token, jwt) => {
        const now = Math.floor(Date.now() / 1000);
        if (expired.has(token.clientId)) {
          jwt.payload.iat = now - 7200;
          jwt.payload.exp = now - 3600;
        }
        if (notYetValid.has(token.clientId)) {
          jwt.payload.nbf = now + 3600;
        }
      },
    },
  },
  // Errors go to the client as OAuth error responses; a 500 also to stderr.
  renderError: (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
});
provider.proxy = false;

provider.on('grant.success', (ctx) => {
  const p = ctx.oidc.params ?? {};
  logLine({
    client_id: ctx.oidc.client?.clientId, grant_type: p.grant_type, resource: p.resource ?? null,
    scope: p.scope ?? null, status: ctx.status, granted_scope: ctx.body?.scope ?? null,
    token_type: ctx.body?.token_type ?? null,
  });
});
provider.on('grant.error', (ctx, err) => {
  const p = ctx.oidc?.params ?? {};
  logLine({
    client_id: ctx.oidc?.client?.clientId ?? null, grant_type: p.grant_type ?? null, resource: p.resource ?? null,
    scope: p.scope ?? null, status: err.statusCode ?? 500, error: err.error ?? String(err),
  });
});
provider.on('server_error', (_ctx, err) => { console.error('oidc-provider server_error:', err); });

handler = provider.callback();

const publicKids = jwks.keys.map((k) => k.kid);
process.stdout.write(`${JSON.stringify({
  issuer, port, token_endpoint: `http://127.0.0.1:${port}/token`, jwks_uri: `http://127.0.0.1:${port}/jwks`, kids: publicKids,
})}\n`);

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { server.close(); process.exit(0); });
}
