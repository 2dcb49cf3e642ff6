/** @type {import('next').NextConfig} */
module.exports = {
  // The runbook's release build goes to build/ (next start serves from it).
  distDir: 'build',
  poweredByHeader: false,
};
