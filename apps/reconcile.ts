#!/usr/bin/env node
// kvstore-reconcile: the program the reconciler Job runs. Thin: parsing and exit codes; logic in lib/reconciler.
import { readFileSync } from 'fs';
import { hostname } from 'os';
import * as k8s from '@kubernetes/client-node';
import { parseStoreDocument } from '../lib/spec';
import { KubeClient } from '../lib/reconciler/client';
import { Log } from '../lib/reconciler/log';
import { reconcileStore, RefusedError } from '../lib/reconciler/reconcile';

const USAGE = 'usage: kvstore-reconcile --store FILE [--force] [--dry-run] [--json]';

export async function main(argv: string[]): Promise<number> {
  const flags = new Set(argv.filter((a) => a.startsWith('--') && a !== '--store'));
  const storeIndex = argv.indexOf('--store');
  const file = storeIndex >= 0 ? argv[storeIndex + 1] : undefined;
  const unknown = [...flags].filter((f) => !['--force', '--dry-run', '--json'].includes(f));
  const log = new Log(flags.has('--json'));
  if (!file || unknown.length > 0) {
    log.error(unknown.length ? `unknown option ${unknown.join(', ')}; ${USAGE}` : USAGE);
    return 64;
  }
  try {
    const document = parseStoreDocument(readFileSync(file, 'utf8'));
    const kubeConfig = new k8s.KubeConfig();
    kubeConfig.loadFromDefault();
    const client = new KubeClient(kubeConfig);
    await reconcileStore(document, client, log, {
      force: flags.has('--force'),
      dryRun: flags.has('--dry-run'),
      holder: process.env.POD_NAME ?? process.env.HOSTNAME ?? `${hostname()}-${process.pid}`,
    });
    return 0;
  } catch (e) {
    log.error((e as Error).message, { error: (e as Error).name });
    return e instanceof RefusedError ? 2 : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
