// Mints meinGPT-style tokens with jose, an independent JWT implementation,
// for tests/interop.rs.
//
//   node interop/mint.mjs <issuer> <organization>
//
// Prints one JSON line: {"jwks": {"keys": [...]}, "tokens": {"member": ...,
// "admin": ..., "expired": ..., "wrong_audience": ...}}.

import { randomUUID } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';

const [issuer, organization] = process.argv.slice(2);
if (!issuer || !organization) {
  console.error('usage: node interop/mint.mjs <issuer> <organization>');
  process.exit(2);
}

const ALG = 'RS256';
const { publicKey, privateKey } = await generateKeyPair(ALG, { extractable: true });
const jwk = await exportJWK(publicKey);
const kid = await calculateJwkThumbprint(jwk);
const publicJwk = { ...jwk, kid, alg: ALG, use: 'sig' };

const now = Math.floor(Date.now() / 1000);

async function mint({ sub, role, teams, aud = organization, iat = now, exp = now + 3600 }) {
  return new SignJWT({
    email: `${sub}@example.com`,
    username: `User ${sub}`,
    organizationName: 'Example GmbH',
    role,
    teams,
  })
    .setProtectedHeader({ alg: ALG, kid, typ: 'JWT' })
    .setIssuer(issuer)
    .setSubject(sub)
    .setAudience(aud)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(randomUUID())
    .sign(privateKey);
}

const member = { sub: 'member-1', role: 'member', teams: [{ id: 'team-mkt', name: 'Marketing' }] };
const admin = { sub: 'admin-1', role: 'admin', teams: [{ id: 'team-eng', name: 'Engineering' }] };

const tokens = {
  member: await mint(member),
  admin: await mint(admin),
  // Expired an hour ago: far beyond any clock-skew leeway.
  expired: await mint({ ...member, iat: now - 7200, exp: now - 3600 }),
  wrong_audience: await mint({ ...member, aud: 'some-other-organization' }),
};

console.log(JSON.stringify({ jwks: { keys: [publicJwk] }, tokens }));
