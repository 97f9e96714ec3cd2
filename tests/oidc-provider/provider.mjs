// Two local OpenID Connect providers for Framehouse's integration tests (oidc-provider 8.8.1).
//
//   GOOD   signs ID tokens with key A and publishes A.
//   ROGUE  signs ID tokens with key B but its JWKS publishes only key C (another kid),
//          so a relying party sees an ID token signed by an unknown key.
//
// Both listen on 127.0.0.1 (ports from OIDC_PORT_GOOD / OIDC_PORT_ROGUE, free ports when
// 0 or unset) and, once both listen, print one JSON line to stdout:
//   {"good":"http://127.0.0.1:P1","rogue":"http://127.0.0.1:P2"}
// They run until SIGTERM/SIGINT, or until stdin reaches EOF when stdin is a pipe or a
// socket (so the process dies with a parent that holds the write end).
//
// Clients (both instances), confidential, client_secret_basic, code flow, PKCE S256 required:
//   framehouse           / framehouse-secret
//   framehouse-badnonce  / framehouse-secret  (the `nonce` of GET /auth is replaced by
//                                              "tampered-nonce" before the provider sees it)
// Any redirect_uri http://127.0.0.1:<port>/... is accepted for them.
//
// No human interaction: GET /interaction/:uid logs in the account named by the authorization
// request's `login_hint` (400 without one) and grants whatever is asked for. Any account id
// exists; ids starting with "unverified" have email_verified=false, ids starting with "admin"
// are in the group "fh-admins", others in "fh-users".
//
// Logs (oidc-provider's notices, errors) go to stderr only when OIDC_DEBUG=1.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const DEBUG = process.env.OIDC_DEBUG === '1';

// Keep stdout for the single ready line; library chatter goes to stderr (or nowhere).
const toStderr = (...args) => {
  if (DEBUG) process.stderr.write(`${args.map(String).join(' ')}\n`);
};
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;
console.error = toStderr;
console.debug = toStderr;

const HOST = '127.0.0.1';
const CLIENT_SECRET = 'framehouse-secret';
const BAD_NONCE_CLIENT = 'framehouse-badnonce';
const TAMPERED_NONCE = 'tampered-nonce';

function rsaKey(kid) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const meta = { kid, alg: 'RS256', use: 'sig' };
  return {
    private: { ...privateKey.export({ format: 'jwk' }), ...meta },
    public: { ...publicKey.export({ format: 'jwk' }), ...meta },
  };
}

function randomSecret() {
  return crypto.randomBytes(32).toString('base64url');
}

function parsePort(name) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return 0;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${name} must be a port number, got ${JSON.stringify(raw)}`);
  }
  return port;
}

function listen(port) {
  return new Promise((resolve, reject) => {
    const server = http.createServer();
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function account(id) {
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: `${id}@example.test`,
        email_verified: !id.startsWith('unverified'),
        preferred_username: id,
        name: id,
        groups: id.startsWith('admin') ? ['fh-admins'] : ['fh-users'],
      };
    },
  };
}

// Test-only wildcard redirect URIs, after oidc-provider's "Redirect URI wildcards" recipe:
// keep the stock check, and additionally accept any plain http://127.0.0.1:<port>/... URI.
function allowLoopbackRedirectUris(provider) {
  const { redirectUriAllowed } = provider.Client.prototype;
  provider.Client.prototype.redirectUriAllowed = function loopbackRedirectUriAllowed(redirectUri) {
    if (redirectUriAllowed.call(this, redirectUri)) return true;
    let url;
    try {
      url = new URL(redirectUri);
    } catch {
      return false;
    }
    return url.protocol === 'http:'
      && url.hostname === HOST
      && url.port !== ''
      && url.username === ''
      && url.password === ''
      && url.hash === '';
  };
}

function interactionMiddleware(provider) {
  return async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)\/?$/.exec(ctx.path);
    if (!match || ctx.method !== 'GET') return next();

    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt, params, session } = details;
    let result;
    if (prompt.name === 'login') {
      const accountId = typeof params.login_hint === 'string' ? params.login_hint.trim() : '';
      if (!accountId) {
        ctx.status = 400;
        ctx.type = 'text/plain';
        ctx.body = 'test OIDC provider: the authorization request needs a login_hint naming the account\n';
        return undefined;
      }
      result = { login: { accountId } };
    } else if (prompt.name === 'consent') {
      const accountId = session?.accountId;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId, clientId: params.client_id });
      const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
      if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
      if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
      if (missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
      }
      result = { consent: { grantId: await grant.save() } };
    } else {
      result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
    }
    ctx.respond = false; // interactionFinished writes the 303 itself
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    return undefined;
  };
}

// framehouse-badnonce: the ID token must carry a nonce the relying party did not send.
function badNonceMiddleware() {
  return async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/auth' && ctx.query.client_id === BAD_NONCE_CLIENT) {
      ctx.query = { ...ctx.query, nonce: TAMPERED_NONCE };
    }
    return next();
  };
}

// ROGUE: publish a key that did not sign anything.
function rogueJwksMiddleware(publishedKey) {
  return async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/jwks') {
      ctx.type = 'application/jwk-set+json; charset=utf-8';
      ctx.body = { keys: [publishedKey] };
      return undefined;
    }
    return next();
  };
}

// The stock login prompt ignores login_hint once a session exists, and switching the account
// of a session needs a JavaScript form post to /session/end/confirm. So when an authorization
// request's login_hint names another account than the browser's session, that session is
// dropped on the server first: the provider then logs the named account in afresh (and
// writes a new session cookie), and a test can reuse one cookie jar across users. A session of
// the same account is reused; without login_hint an existing session is reused (and with
// neither, the interaction answers 400).
function switchAccountOnLoginHint(provider) {
  return async (ctx, next) => {
    const hint = ctx.method === 'GET' && ctx.path === '/auth' && typeof ctx.query.login_hint === 'string'
      ? ctx.query.login_hint.trim() : '';
    if (hint !== '' && /(^|;)\s*_session=/.test(ctx.req.headers.cookie ?? '')) {
      const session = await provider.Session.get(ctx);
      if (session.accountId && session.accountId !== hint) await session.destroy();
    }
    return next();
  };
}

function makeProvider(issuer, signingKey) {
  const client = (clientId) => ({
    client_id: clientId,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://${HOST}/cb`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  });

  const provider = new Provider(issuer, {
    clients: [client('framehouse'), client(BAD_NONCE_CLIENT)],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomSecret(), randomSecret()] },
    findAccount: async (ctx, id) => account(id),
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    // Put the claims of the granted scopes in the ID token, not only behind /me.
    conformIdTokenClaims: false,
    pkce: { methods: ['S256'], required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    async renderError(ctx, out) {
      ctx.type = 'application/json; charset=utf-8';
      ctx.body = out;
    },
  });
  provider.proxy = false;
  allowLoopbackRedirectUris(provider);
  if (DEBUG) {
    for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
      'jwks.error', 'discovery.error', 'end_session.error', 'interaction.error']) {
      provider.on(event, (ctx, err) => toStderr(`[${issuer}] ${event}: ${err?.message} ${err?.error_description ?? ''}`));
    }
    provider.use(async (ctx, next) => {
      await next();
      toStderr(`[${issuer}] ${ctx.method} ${ctx.url} -> ${ctx.respond === false ? ctx.res.statusCode : ctx.status}`);
    });
  }
  return provider;
}

async function main() {
  const keyA = rsaKey('good-a');
  const keyB = rsaKey('rogue-b');
  const keyC = rsaKey('rogue-c');

  const goodServer = await listen(parsePort('OIDC_PORT_GOOD'));
  const rogueServer = await listen(parsePort('OIDC_PORT_ROGUE'));
  const good = `http://${HOST}:${goodServer.address().port}`;
  const rogue = `http://${HOST}:${rogueServer.address().port}`;

  const goodProvider = makeProvider(good, keyA.private);
  goodProvider.use(switchAccountOnLoginHint(goodProvider));
  goodProvider.use(badNonceMiddleware());
  goodProvider.use(interactionMiddleware(goodProvider));

  const rogueProvider = makeProvider(rogue, keyB.private);
  rogueProvider.use(rogueJwksMiddleware(keyC.public));
  rogueProvider.use(switchAccountOnLoginHint(rogueProvider));
  rogueProvider.use(badNonceMiddleware());
  rogueProvider.use(interactionMiddleware(rogueProvider));

  goodServer.on('request', goodProvider.callback());
  rogueServer.on('request', rogueProvider.callback());

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const server of [goodServer, rogueServer]) {
      server.close();
      server.closeAllConnections?.();
    }
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  const stdin = fs.fstatSync(0);
  if (stdin.isFIFO() || stdin.isSocket()) {
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.on('error', stop);
    process.stdin.on('data', () => {});
    process.stdin.resume();
  }

  process.stdout.write(`${JSON.stringify({ good, rogue })}\n`);
}

main().catch((err) => {
  process.stderr.write(`test OIDC provider failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
});
