// An Express app that signs users in and out with Scalekit's official Node
// SDK, written the way Scalekit's guides show: tokens in HttpOnly cookies,
// GET /logout that reads the ID token, builds the logout URL, clears the
// cookies and redirects. The Go test points it at scalekittest and drives it
// with a browser-like client; the /admin and /results routes let the test
// see each SDK call's result.
'use strict';

const crypto = require('node:crypto');
const express = require('express');
const cookieParser = require('cookie-parser');
const { Scalekit } = require('@scalekit-sdk/node');

const envUrl = process.env.SCALEKIT_ENVIRONMENT_URL;
const clientId = process.env.SCALEKIT_CLIENT_ID;
const scalekit = new Scalekit(envUrl, clientId, process.env.SCALEKIT_CLIENT_SECRET);
// A public client, as a single-page or native app is: built without a
// secret, it proves itself with PKCE alone.
const publicClientId = process.env.SCALEKIT_PUBLIC_CLIENT_ID;
const scalekitPublic = new Scalekit(envUrl, publicClientId, '');
const webhookSecret = process.env.SCALEKIT_WEBHOOK_SECRET;
const appUrl = process.env.APP_URL;
const redirectUri = `${appUrl}/auth/callback`;
const postLogoutRedirectUri = `${appUrl}/login`;

const cookieOptions = { httpOnly: true, sameSite: 'lax', path: '/' };

// Every SDK call's latest result, and every webhook verification, by name.
const results = {};
const webhooks = [];

const app = express();
app.use(cookieParser());

app.get('/login', (req, res) => {
  const state = crypto.randomBytes(16).toString('base64url');
  const options = { scopes: ['openid', 'profile', 'email', 'offline_access'], state };
  // The SDK's routing and prompt options, as the test passes them.
  for (const name of ['organizationId', 'connectionId', 'domainHint', 'loginHint', 'prompt']) {
    if (typeof req.query[name] === 'string') options[name] = req.query[name];
  }
  const pkce = req.query.pkce !== 'off';
  let verifier = '';
  if (pkce) {
    verifier = crypto.randomBytes(32).toString('base64url');
    options.codeChallenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    options.codeChallengeMethod = 'S256';
  }
  const authorizationUrl = scalekit.getAuthorizationUrl(redirectUri, options);
  results.getAuthorizationUrl = { url: authorizationUrl, pkce };
  res.cookie('authRequest', JSON.stringify({ state, verifier }), { ...cookieOptions, maxAge: 600000 });
  res.redirect(authorizationUrl);
});

app.get('/auth/callback', async (req, res) => {
  const { code, state, error } = req.query;
  const stored = JSON.parse(req.cookies.authRequest || '{}');
  res.clearCookie('authRequest', cookieOptions);
  if (error || !code || !state || state !== stored.state) {
    // As the guides ask: check for error parameters, and the state, before
    // anything else.
    results.callbackError = {
      error: error || 'invalid_state',
      errorDescription: req.query.error_description ?? null,
      stateMatches: Boolean(state) && state === stored.state,
    };
    return res.status(400).json(results.callbackError);
  }
  const options = stored.verifier ? { codeVerifier: stored.verifier } : undefined;
  const authResult = await scalekit.authenticateWithCode(code, redirectUri, options);
  results.authenticateWithCode = {
    user: authResult.user,
    hasIdToken: Boolean(authResult.idToken),
    hasAccessToken: Boolean(authResult.accessToken),
    hasRefreshToken: Boolean(authResult.refreshToken),
    expiresIn: authResult.expiresIn,
  };
  const claims = await scalekit.validateToken(authResult.idToken, { issuer: envUrl, audience: clientId });
  results.validateToken = { sub: claims.sub, sid: claims.sid, email: claims.email, aud: claims.aud };
  results.validateAccessToken = await scalekit.validateAccessToken(authResult.accessToken);
  res.cookie('accessToken', authResult.accessToken, cookieOptions);
  res.cookie('refreshToken', authResult.refreshToken, cookieOptions);
  res.cookie('idToken', authResult.idToken, cookieOptions);
  res.redirect('/');
});

app.get('/', async (req, res) => {
  const token = req.cookies.accessToken;
  const signedIn = Boolean(token) && (await scalekit.validateAccessToken(token));
  res.json({ signedIn });
});

// Renews the tokens, then shows that the refresh token just spent is dead.
app.get('/auth/refresh', async (req, res) => {
  const old = req.cookies.refreshToken;
  const renewed = await scalekit.refreshAccessToken(old);
  res.cookie('accessToken', renewed.accessToken, cookieOptions);
  res.cookie('refreshToken', renewed.refreshToken, cookieOptions);
  let reuse;
  try {
    await scalekit.refreshAccessToken(old);
    reuse = 'accepted';
  } catch (err) {
    reuse = err.message;
  }
  results.refreshAccessToken = {
    newAccessToken: renewed.accessToken !== req.cookies.accessToken,
    newRefreshToken: renewed.refreshToken !== old,
    newAccessTokenValid: await scalekit.validateAccessToken(renewed.accessToken),
    oldRefreshTokenAgain: reuse,
  };
  res.json(results.refreshAccessToken);
});

// As Scalekit's logout guide shows: read the ID token before clearing the
// cookies, then send the browser to Scalekit.
app.get('/logout', (req, res) => {
  const idTokenHint = req.cookies.idToken;
  const logoutUrl = scalekit.getLogoutUrl({ idTokenHint, postLogoutRedirectUri });
  results.getLogoutUrl = { url: logoutUrl };
  res.clearCookie('accessToken', cookieOptions);
  res.clearCookie('refreshToken', cookieOptions);
  res.clearCookie('idToken', cookieOptions);
  res.redirect(logoutUrl);
});

// The public client's sign-in: PKCE always, and no secret anywhere.
app.get('/public/login', (req, res) => {
  const state = crypto.randomBytes(16).toString('base64url');
  const verifier = crypto.randomBytes(32).toString('base64url');
  const authorizationUrl = scalekitPublic.getAuthorizationUrl(`${appUrl}/public/callback`, {
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    state,
    codeChallenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
    codeChallengeMethod: 'S256',
  });
  res.cookie('publicAuthRequest', JSON.stringify({ state, verifier }), { ...cookieOptions, maxAge: 600000 });
  res.redirect(authorizationUrl);
});

app.get('/public/callback', async (req, res) => {
  const { code, state } = req.query;
  const stored = JSON.parse(req.cookies.publicAuthRequest || '{}');
  res.clearCookie('publicAuthRequest', cookieOptions);
  if (!code || state !== stored.state) {
    return res.status(400).json({ error: req.query.error || 'invalid_state' });
  }
  const authResult = await scalekitPublic.authenticateWithCode(code, `${appUrl}/public/callback`, { codeVerifier: stored.verifier });
  const claims = await scalekitPublic.validateToken(authResult.idToken, { issuer: envUrl, audience: publicClientId });
  let refreshed;
  try {
    const renewed = await scalekitPublic.refreshAccessToken(authResult.refreshToken);
    refreshed = { newAccessToken: renewed.accessToken !== authResult.accessToken, newRefreshToken: renewed.refreshToken !== authResult.refreshToken };
  } catch (err) {
    refreshed = { error: err.message };
  }
  results.public = {
    email: authResult.user.email,
    sid: claims.sid,
    aud: claims.aud,
    hasRefreshToken: Boolean(authResult.refreshToken),
    refreshAccessToken: refreshed,
  };
  res.json(results.public);
});

app.post('/webhooks/scalekit', express.text({ type: '*/*' }), (req, res) => {
  let valid;
  try {
    valid = scalekit.verifyWebhookPayload(webhookSecret, req.headers, req.body);
  } catch (err) {
    valid = false;
  }
  const event = valid ? JSON.parse(req.body) : {};
  webhooks.push({
    valid,
    id: req.headers['webhook-id'],
    type: event.type,
    displayName: event.display_name,
    session: event.data?.user_session,
    user: event.data?.user,
  });
  res.status(valid ? 201 : 400).end();
});

// Server-side admin routes around the session API.
const sdkCall = (name, fn) => async (req, res) => {
  try {
    results[name] = await fn(req);
  } catch (err) {
    results[name] = { error: err.message, grpcStatus: err.grpcStatus ?? null, errorCode: err.errorCode ?? null };
  }
  res.type('json').send(JSON.stringify(results[name], plain));
};

app.get('/admin/sessions/:id', sdkCall('session.getSession', (req) => scalekit.session.getSession(req.params.id)));
app.get('/admin/users/:id/sessions', sdkCall('session.getUserSessions', (req) =>
  scalekit.session.getUserSessions(req.params.id, req.query.status ? { filter: { status: [req.query.status] } } : undefined)));
app.post('/admin/sessions/:id/revoke', sdkCall('session.revokeSession', (req) => scalekit.session.revokeSession(req.params.id)));
app.post('/admin/users/:id/revoke', sdkCall('session.revokeAllUserSessions', (req) => scalekit.session.revokeAllUserSessions(req.params.id)));
app.post('/admin/validate-access-token', express.text({ type: '*/*' }), sdkCall('validateAccessToken(other)', async (req) => ({
  valid: await scalekit.validateAccessToken(req.body),
})));

app.get('/results', (req, res) => {
  res.type('json').send(JSON.stringify({ ...results, webhooks }, plain));
});

// plain makes SDK messages JSON: 64-bit numbers as strings, Timestamps as
// RFC 3339, no protobuf type names.
function plain(key, value) {
  if (key === '$typeName') return undefined;
  if (typeof value === 'bigint') return value.toString();
  if (value && typeof value === 'object' && value.$typeName === 'google.protobuf.Timestamp') {
    return new Date(Number(value.seconds) * 1000 + Math.floor(value.nanos / 1e6)).toISOString();
  }
  return value;
}

app.use((err, req, res, next) => {
  res.status(500).json({ error: err.message });
});

const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
