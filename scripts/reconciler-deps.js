#!/usr/bin/env node
// Prints what a production-only install of the reconciler adds beside the packed library, one package
// spec a line: cdk8s, constructs and the reconciler's optional peers, at the exact versions this
// checkout's lockfile resolved (tested together). The Dockerfile and test/apps/production-install.test.ts
// install with it: `npm install --omit=dev <library.tgz> $(node scripts/reconciler-deps.js)`.
'use strict';
const { readFileSync } = require('fs');
const { join } = require('path');

const root = join(__dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
const specs = Object.keys(pkg.peerDependencies).sort().map((name) => {
  const locked = lock.packages[`node_modules/${name}`];
  if (!locked) throw new Error(`package-lock.json resolves no ${name}: run npm install`);
  return `${name}@${locked.version}`;
});
process.stdout.write(`${specs.join('\n')}\n`);
