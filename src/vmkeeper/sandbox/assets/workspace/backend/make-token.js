'use strict';
// Prints a valid HS256 JWT for the sandbox backend.
// Usage: node make-token.js [subject]   (signs with env JWT_SECRET, default 'sandbox-secret';
// TOKEN_TTL_SECONDS sets the lifetime, default 3600)
const { sign } = require('./jwt');

const sub = process.argv[2] || 'sandbox-user';
const ttl = Number(process.env.TOKEN_TTL_SECONDS || 3600);
const now = Math.floor(Date.now() / 1000);
process.stdout.write(sign({ sub, email: `${sub}@sandbox.local`, iat: now, exp: now + ttl }) + '\n');
