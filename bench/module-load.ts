// Library-cost child: loads either the construct entry (`lib`) or only what a plain cdk8s app loads (`floor`),
// then prints the module count, the load time and any reconciler-only package it loaded.
import { loadedPackages, reconcilerOnlyLoaded } from './loaded-modules';

const before = new Set(Object.keys(require.cache));
const started = process.hrtime.bigint();
if (process.argv[2] === 'lib') {
  require('../lib');
} else {
  require('cdk8s');
  require('cdk8s-plus-28');
}
const ms = Number(process.hrtime.bigint() - started) / 1e6;
const loaded = Object.keys(require.cache).filter((file) => !before.has(file));
process.stdout.write(JSON.stringify({
  ms,
  modules: loaded.length,
  packages: loadedPackages(loaded),
  reconcilerOnly: reconcilerOnlyLoaded(),
}) + '\n');
