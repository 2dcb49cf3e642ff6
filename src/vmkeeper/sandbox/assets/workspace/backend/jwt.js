'use strict';
// Minimal HS256 JSON Web Tokens on node:crypto (no dependencies).
const crypto = require('node:crypto');

const DEFAULT_SECRET = 'sandbox-secret';

function secret() {
  return process.env.JWT_SECRET || DEFAULT_SECRET;
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function hmac(data, key) {
  return crypto.createHmac('sha256', key).update(data).digest();
}

function sign(claims, key = secret()) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const signature = b64url(hmac(`${header}.${payload}`, key));
  return `${header}.${payload}.${signature}`;
}

// Returns the claims of a valid token, or null.
function verify(token, key = secret(), nowSeconds = Math.floor(Date.now() / 1000)) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [header, payload, signature] = parts;
  let head;
  let claims;
  try {
    head = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (!head || head.alg !== 'HS256') return null;
  if (!claims || typeof claims !== 'object' || Array.isArray(claims)) return null;
  const expected = hmac(`${header}.${payload}`, key);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
  if (claims.exp !== undefined && (typeof claims.exp !== 'number' || nowSeconds >= claims.exp)) {
    return null;
  }
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || nowSeconds < claims.nbf)) {
    return null;
  }
  return claims;
}

module.exports = { sign, verify, DEFAULT_SECRET };
