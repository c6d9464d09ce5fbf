// Signs in to an MCP server the way a standard MCP client does, with the
// official TypeScript SDK's OAuth support, and calls one tool. Its only
// knowledge of the server is the URL: it learns where to sign in from the
// server's 401 (RFC 9728 protected resource metadata), finds the
// authorization server there, gets a token, and calls the tool.
//
//   node interop/mcp_oauth_client.mjs URL TOOL client-credentials CLIENT_ID CLIENT_SECRET ISSUER SCOPE [TOKEN]
//   node interop/mcp_oauth_client.mjs URL TOOL authorization-code [TOKEN]
//
// `client-credentials` uses the SDK's ClientCredentialsProvider with a
// pre-registered client (which asks for SCOPE: the SDK's client-credentials
// flow sends the configured scope); `authorization-code` is an
// OAuthClientProvider with dynamic client registration and PKCE, whose
// browser step follows the authorization redirect as a user who approves at
// once, then finishes the sign-in with `transport.finishAuth(code)` as the
// SDK's examples do. TOKEN, when given, is an access token the client
// already holds.
//
// Prints `result: TEXT` and exits 0, or `error: STATUS` (the HTTP status
// that ended the session, e.g. 403) or `error: DESCRIPTION` and exits 1.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const REDIRECT_URI = 'http://127.0.0.1:9/callback';

/** An interactive client: dynamic registration, PKCE, a browser that approves at once. */
class BrowserClient {
  constructor(token) {
    this._tokens = token ? { access_token: token, token_type: 'Bearer' } : undefined;
    this._clientInformation = undefined;
    this._codeVerifier = undefined;
    this._discovery = undefined;
    this.pendingAuthorization = undefined;
  }
  get redirectUrl() {
    return REDIRECT_URI;
  }
  get clientMetadata() {
    return {
      client_name: 'meingpt-auth test client',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this._clientInformation;
  }
  saveClientInformation(information) {
    this._clientInformation = information;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
  }
  redirectToAuthorization(url) {
    this.pendingAuthorization = url;
  }
  saveCodeVerifier(verifier) {
    this._codeVerifier = verifier;
  }
  codeVerifier() {
    return this._codeVerifier;
  }
  discoveryState() {
    return this._discovery;
  }
  saveDiscoveryState(state) {
    this._discovery = state;
  }

  /** Opens the pending authorization URL and returns the code of its redirect. */
  async approve() {
    const url = this.pendingAuthorization;
    this.pendingAuthorization = undefined;
    if (!url) throw new Error('no authorization is pending');
    const response = await fetch(url, { redirect: 'manual' });
    const location = response.headers.get('location');
    if (response.status !== 302 || !location) {
      throw new Error(`authorization answered ${response.status}: ${await response.text()}`);
    }
    if (!location.startsWith(REDIRECT_URI)) throw new Error(`redirected elsewhere: ${location}`);
    const query = new URL(location).searchParams;
    if (query.get('error')) throw new Error(`authorization refused: ${query.get('error')}`);
    return query.get('code');
  }
}

function providerFor(args) {
  const [flow, ...rest] = args;
  if (flow === 'client-credentials') {
    const [clientId, clientSecret, expectedIssuer, scope, token] = rest;
    const provider = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer, scope });
    if (token) provider.saveTokens({ access_token: token, token_type: 'Bearer' });
    return provider;
  }
  if (flow === 'authorization-code') {
    return new BrowserClient(rest[0]);
  }
  throw new Error(`unknown flow ${flow}`);
}

async function callTool(url, tool, provider) {
  // A sign-in that needs the browser ends the attempt with UnauthorizedError;
  // the user approves, the transport finishes the sign-in, and the client
  // tries again (at most twice: the first token, then a step-up).
  for (let attempt = 0; ; attempt++) {
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    const client = new Client({ name: 'meingpt-auth test client', version: '1.0.0' });
    try {
      await client.connect(transport);
      const result = await client.callTool({ name: tool, arguments: {} });
      if (result.isError) throw new Error(`tool ${tool} failed`);
      return result.content.filter((block) => block.type === 'text').map((block) => block.text).join('');
    } catch (error) {
      if (!(error instanceof UnauthorizedError) || !provider.pendingAuthorization || attempt >= 2) {
        throw error;
      }
      await transport.finishAuth(await provider.approve());
    } finally {
      await client.close().catch(() => {});
    }
  }
}

const [url, tool, ...flow] = process.argv.slice(2);
const timer = setTimeout(() => {
  console.log('error: timed out');
  process.exit(1);
}, 30_000);
try {
  const text = await callTool(url, tool, providerFor(flow));
  console.log(`result: ${text}`);
  clearTimeout(timer);
  process.exit(0);
} catch (error) {
  const status = error?.code ?? error?.status;
  console.log(`error: ${typeof status === 'number' ? status : String(error?.message ?? error)}`);
  clearTimeout(timer);
  process.exit(1);
}
