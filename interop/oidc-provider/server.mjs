// A certified OpenID provider (panva's oidc-provider, unmodified) mounted at
// OneAccess's paths, for the gateway's interoperability tests
// (tests/interop_oidc.rs). Nobody here wrote its protocol code: where it and the
// simulator disagree, the gateway must follow it.
//
// Environment:
//   PORT        where to listen (127.0.0.1)
//   GATEWAY     the gateway's public origin, e.g. http://localhost:8080: its
//               redirect, post-logout and back-channel logout URLs are registered
//   ACCESS_TTL  access token lifetime in seconds (default 3600)
//
// Every start makes a new signing key with a new `kid`: a restart is a key
// rotation. Users: 20240001 (alice) and 20240002 (bob); the development login
// form takes the user id as its login and any password.

import http from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const gateway = process.env.GATEWAY;
const accessTtl = Number(process.env.ACCESS_TTL || 3600);
const prefix = '/api/v1/oauth2';
const issuer = `http://127.0.0.1:${port}${prefix}`;

const accounts = {
  20240001: {
    sub: '20240001',
    email: 'alice@example.com',
    email_verified: true,
    preferred_username: 'alice',
    name: 'Alice Zhang',
  },
  20240002: {
    sub: '20240002',
    email: 'bob@example.org',
    email_verified: true,
    preferred_username: 'bob',
    name: 'Bob Li',
  },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signing = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'demo-client',
    client_secret: 'demo-secret',
    redirect_uris: [`${gateway}/_sso/callback`],
    post_logout_redirect_uris: [`${gateway}/_sso/logged-out`],
    // Server to server: by address, as Node may take `localhost` for ::1.
    backchannel_logout_uri: `${gateway.replace('//localhost', '//127.0.0.1')}/_sso/backchannel-logout`,
    backchannel_logout_session_required: true,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  jwks: { keys: [signing] },
  findAccount: (_ctx, id) => (accounts[id]
    ? { accountId: id, claims: () => accounts[id] }
    : undefined),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // A first-party client: consent is given at login, no consent screen.
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) {
      return ctx.oidc.provider.Grant.find(id);
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile offline_access');
    await grant.save();
    return grant;
  },
  issueRefreshToken: async () => true,
  rotateRefreshToken: true,
  ttl: { AccessToken: accessTtl, IdToken: accessTtl },
  cookies: { keys: ['oneaccess-gateway-interop'] },
  // The provider refuses to call special-use addresses (SSRF protection); here
  // every server is on loopback, so its back-channel logout goes out plainly.
  fetch: (url, options) => {
    const { dispatcher, ...plain } = options;
    return globalThis.fetch(url, plain);
  },
  routes: {
    authorization: '/authorize',
    token: '/token',
    userinfo: '/userinfo',
    jwks: '/jwks',
    end_session: '/logout',
  },
});

// What the tests read when something goes wrong.
provider.on('backchannel.success', (_ctx, client) => {
  console.log(`backchannel logout sent to ${client.clientId}`);
});
provider.on('backchannel.error', (_ctx, err, client) => {
  console.log(`backchannel logout to ${client.clientId} failed: ${err.message} ${err.cause?.message ?? ''} ${err.cause?.code ?? ''}`);
});
provider.on('server_error', (_ctx, err) => console.log(`server_error: ${err.stack}`));

const app = provider.callback();
http.createServer((req, res) => {
  if (req.url === prefix || req.url.startsWith(`${prefix}/`)) {
    // Mounted under the prefix, as Express would: the provider builds its URLs
    // from `originalUrl`.
    req.originalUrl = req.url;
    req.url = req.url.slice(prefix.length) || '/';
    app(req, res);
    return;
  }
  res.writeHead(404).end();
}).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ${issuer} kid=${signing.kid}`);
});
