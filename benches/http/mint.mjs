// Mints tokens for the HTTP load benchmark with an independent JWT
// implementation (Node jose): writes jwks.json, one.txt (one token) and
// tokens.txt (COUNT distinct tokens) into DIR.
// Usage: node benches/http/mint.mjs DIR ISSUER ORGANIZATION COUNT
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../interop/package.json', import.meta.url));
const { SignJWT, exportJWK, generateKeyPair } = await import(require.resolve('jose'));

const [dir, issuer, organization, count] = process.argv.slice(2);
const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));

const now = Math.floor(Date.now() / 1000);
async function mint(n) {
  return new SignJWT({
    email: `user${n}@example.com`,
    username: `User ${n}`,
    organizationName: 'Bench GmbH',
    role: n % 10 === 0 ? 'admin' : 'member',
    teams: [{ id: 'team-eng', name: 'Engineering' }],
  })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench-1', typ: 'JWT' })
    .setIssuer(issuer)
    .setAudience(organization)
    .setSubject(`user-${n}`)
    .setJti(crypto.randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);
}

writeFileSync(join(dir, 'one.txt'), (await mint(0)) + '\n');
const tokens = [];
for (let n = 1; n <= Number(count); n++) tokens.push(await mint(n));
writeFileSync(join(dir, 'tokens.txt'), tokens.join('\n') + '\n');
