/** @type {import('next').NextConfig} */
module.exports = {
  // The runbook's release build goes to build/ (next start serves from it).
  distDir: 'build',
  poweredByHeader: false,
  // One build ID per commit (the deploy passes GIT_SHA): rebuilding a commit keeps its asset
  // names, and /_next/static/<build id>/ of every retained release stays apart (skew protection).
  generateBuildId: async () => process.env.GIT_SHA || null,
};
