// A real OpenID Connect provider (the `oidc-provider` npm package) for the test suite.
//
//   node server.mjs CONFIG.json
//
// CONFIG.json:
//   {
//     "issuer": "http://127.0.0.1:PORT",        // what the browser uses; also the `iss` of tokens
//     "host": "0.0.0.0",                        // listen address (default 0.0.0.0)
//     "port": PORT,                             // listen port (default: the issuer's port)
//     "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": ["..."],
//                  "token_endpoint_auth_method": "client_secret_post"}],   // optional, see below
//     "accounts": {"<login>": {"password": "...", "email": "...", "groups": ["..."], "name": "..."}}
//   }
//
// Sign-in uses oidc-provider's development interactions (its built-in login form and consent
// form, served under /interaction/<uid>). That login form on its own accepts ANY login and ANY
// password; this server puts a check in front of it: a login that is not in "accounts", or a
// wrong password, is answered 401 with the form again (and the message "Invalid login or
// password"), and no session is made. findAccount also knows only the configured accounts.
//
// Claims (from the userinfo endpoint, for the scopes openid profile email groups):
//   sub = login, preferred_username = login, name, email, email_verified, groups (a list).
// Access tokens are opaque and are accepted at the userinfo endpoint.
//
// The server listens on HOST:PORT and answers whatever Host header a request carries: a JupyterHub
// in a container reaches the token and userinfo endpoints at http://host.docker.internal:PORT or
// http://172.17.0.1:PORT while the browser uses the issuer (http://127.0.0.1:PORT). Tokens
// always carry the configured issuer.
//
// Clients are registered with `client_secret_post` unless a client says otherwise
// (oauthenticator 17 defaults to basic_auth = False, i.e. client_secret_post). oidc-provider 9
// accepts client_secret_basic and client_secret_post alike for either registration, so the hub's
// basic_auth setting does not matter; sending both at once is refused.
//
// Prints "OIDC provider ready at <issuer>" on stdout once listening; logs requests to stderr.

import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node server.mjs CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const issuer = String(config.issuer).replace(/\/+$/, '');
const issuerUrl = new URL(issuer);
const host = config.host || '0.0.0.0';
const port = Number(config.port || issuerUrl.port);
const accounts = config.accounts || {};

const log = (...args) => console.error(new Date().toISOString(), ...args);

const clients = (config.clients || []).map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  redirect_uris: c.redirect_uris,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: c.token_endpoint_auth_method || 'client_secret_post',
  ...(c.post_logout_redirect_uris ? { post_logout_redirect_uris: c.post_logout_redirect_uris } : {}),
}));

function accountClaims(login) {
  const a = accounts[login];
  return {
    sub: login,
    preferred_username: login,
    name: a.name ?? login,
    email: a.email,
    email_verified: a.email !== undefined,
    groups: Array.isArray(a.groups) ? a.groups : [],
  };
}

const provider = new Provider(issuer, {
  clients,
  async findAccount(ctx, id) {
    if (!Object.prototype.hasOwnProperty.call(accounts, id)) return undefined; // unknown: no account
    return {
      accountId: id,
      async claims() { return accountClaims(id); },
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  features: {
    devInteractions: { enabled: true },
    userinfo: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: {
    // confidential clients may use PKCE (oauthenticator's enable_pkce) but need not
    required: (ctx, client) => client.clientAuthMethod === 'none',
  },
  cookies: {
    // plain http on 127.0.0.1: cookies must not be `secure`; lax works for top-level redirects
    keys: [randomBytes(32).toString('hex')],
    long: { httpOnly: true, sameSite: 'lax', secure: false },
    short: { httpOnly: true, sameSite: 'lax', secure: false },
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 600,
    IdToken: 3600,
    RefreshToken: 86400,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
  renderError(ctx, out, error) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>
<h1>oops! something went wrong</h1>
<pre id="error">${escapeHtml(JSON.stringify(out, null, 2))}</pre></body></html>`;
    log('renderError', JSON.stringify(out), error?.stack || '');
  },
});

// The dev interactions: nothing here is behind a TLS terminating proxy; no X-Forwarded-* trust.
provider.proxy = false;

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

async function readRawBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 56 * 1024) throw new Error('request entity too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function failedLoginPage(uid, login) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign-in</title></head><body>
<div class="login-card">
<h1>Sign-in</h1>
<p class="error" id="login-error">Invalid login or password</p>
<form autocomplete="off" action="/interaction/${escapeHtml(uid)}" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter login" value="${escapeHtml(login || '')}">
  <input required type="password" name="password" placeholder="and password" autofocus="on">
  <button type="submit" class="login login-submit">Sign-in</button>
</form>
</div></body></html>`;
}

// Request log + the password check in front of the development login form.
provider.use(async (ctx, next) => {
  const started = Date.now();
  try {
    const m = /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (m && ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
      const raw = await readRawBody(ctx.req);
      const body = querystring.parse(raw);
      // hand the parsed body on to oidc-provider (it reads req.body once the stream is consumed)
      ctx.req.body = body;
      if (body.prompt === 'login') {
        const login = String(body.login ?? '');
        const password = String(body.password ?? '');
        const account = Object.prototype.hasOwnProperty.call(accounts, login) ? accounts[login] : undefined;
        if (!account || String(account.password) !== password) {
          log(`login refused for ${JSON.stringify(login)} (${account ? 'wrong password' : 'unknown login'})`);
          ctx.status = 401;
          ctx.type = 'html';
          ctx.set('cache-control', 'no-store');
          ctx.body = failedLoginPage(m[1], login);
          return;
        }
        log(`login accepted for ${JSON.stringify(login)}`);
      }
    }
    await next();
  } finally {
    log(`${ctx.method} ${ctx.host}${ctx.originalUrl.replace(/([?&](code|password|client_secret)=)[^&]*/g, '$1***')} -> ${ctx.status} (${Date.now() - started} ms)`);
  }
});

for (const ev of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
  'introspection.error', 'revocation.error', 'end_session.error', 'discovery.error']) {
  provider.on(ev, (ctx, err) => log(`${ev}: ${err?.name}: ${err?.message}${err?.error_description ? ` (${err.error_description})` : ''}`));
}
provider.on('grant.success', (ctx) => log(`grant.success for client ${ctx.oidc.client?.clientId}`));

const server = provider.listen(port, host, () => {
  process.stdout.write(`OIDC provider ready at ${issuer} (listening on ${host}:${port})\n`);
});
server.on('error', (err) => {
  log(`server error: ${err.stack || err}`);
  process.exit(1);
});

function shutdown(sig) {
  log(`${sig}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
