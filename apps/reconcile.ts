#!/usr/bin/env node
// kvstore-reconcile: the program the reconciler Job runs. Thin: parsing and exit codes; logic in lib/reconciler.
import { readFileSync } from 'fs';
import { hostname } from 'os';
import * as k8s from '@kubernetes/client-node';
import { parseStoreDocument } from '../lib/spec';
import { KubeClient } from '../lib/reconciler/client';
import { Log } from '../lib/reconciler/log';
import { reconcileResources } from '../lib/reconciler/custom-resources';
import { reconcileStore, RefusedError } from '../lib/reconciler/reconcile';

const USAGE = 'usage: kvstore-reconcile (--store FILE | --crd (--namespace NS | --all-namespaces)) [--force] [--dry-run] [--json]';
const VALUED = ['--store', '--namespace'];
const FLAGS = ['--crd', '--all-namespaces', '--force', '--dry-run', '--json'];

export async function main(argv: string[], kubeConfig?: k8s.KubeConfig): Promise<number> {
  const value = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const flags = new Set(argv.filter((a, i) => a.startsWith('--') && !VALUED.includes(a) && !VALUED.includes(argv[i - 1])));
  const unknown = [...flags].filter((f) => !FLAGS.includes(f));
  const file = value('--store');
  const log = new Log(flags.has('--json'));
  const crd = flags.has('--crd');
  if (unknown.length > 0 || (!file === !crd) || (crd && !value('--namespace') === !flags.has('--all-namespaces'))) {
    log.error(unknown.length ? `unknown option ${unknown.join(', ')}; ${USAGE}` : USAGE);
    return 64;
  }
  try {
    const config = kubeConfig ?? new k8s.KubeConfig();
    if (!kubeConfig) config.loadFromDefault();
    const client = new KubeClient(config);
    const options = {
      force: flags.has('--force'),
      dryRun: flags.has('--dry-run'),
      holder: process.env.POD_NAME ?? process.env.HOSTNAME ?? `${hostname()}-${process.pid}`,
    };
    if (crd) {
      const { failed } = await reconcileResources(config, client, log, { ...options, namespace: value('--namespace') });
      return failed > 0 ? 1 : 0;
    }
    await reconcileStore(parseStoreDocument(readFileSync(file!, 'utf8')), client, log, options);
    return 0;
  } catch (e) {
    log.error((e as Error).message, { error: (e as Error).name });
    return e instanceof RefusedError ? 2 : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
