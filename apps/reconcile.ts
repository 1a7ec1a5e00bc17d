#!/usr/bin/env node
// kvstore-reconcile: the program the reconciler Job runs. Thin: parsing and exit codes; logic in lib/reconciler.
import { readFileSync } from 'fs';
import { hostname } from 'os';
import * as k8s from '@kubernetes/client-node';
import { KubeClient, Log, parseStoreDocument, pruneSnapshots, reconcileResources, reconcileStore, RefusedError } from '../lib/reconciler';

const USAGE = 'usage: kvstore-reconcile (--store FILE | --crd (--namespace NS | --all-namespaces)) [--force] [--dry-run] [--json] [--etcd-endpoints URL,...] [--lease-seconds N]\n' +
  '       kvstore-reconcile --prune-snapshots DIR --prefix PREFIX --keep N [--keep-file NAME]';
const VALUED = ['--store', '--namespace', '--etcd-endpoints', '--lease-seconds', '--prune-snapshots', '--prefix', '--keep', '--keep-file'];
const FLAGS = ['--crd', '--all-namespaces', '--force', '--dry-run', '--json'];

export async function main(argv: string[], kubeConfig?: k8s.KubeConfig): Promise<number> {
  const value = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const flags = new Set(argv.filter((a, i) => a.startsWith('--') && !VALUED.includes(a) && !VALUED.includes(argv[i - 1])));
  const unknown = [...flags].filter((f) => !FLAGS.includes(f));
  const file = value('--store');
  const log = new Log(flags.has('--json'));
  const pruneDir = value('--prune-snapshots');
  if (pruneDir !== undefined) {
    const prefix = value('--prefix');
    const keep = Number(value('--keep'));
    if (unknown.length > 0 || file || flags.has('--crd') || !prefix || !Number.isInteger(keep) || keep < 1) {
      log.error(`--prune-snapshots needs --prefix and --keep (an integer of at least 1) and nothing else; ${USAGE}`);
      return 64;
    }
    try {
      const deleted = pruneSnapshots(pruneDir, prefix, keep, value('--keep-file') ? [value('--keep-file')!] : []);
      log.info(`kept the newest ${keep} ${prefix}<n>.db snapshot(s) in ${pruneDir}; deleted ${deleted.length}${deleted.length ? `: ${deleted.join(', ')}` : ''}`, { deleted });
      return 0;
    } catch (e) {
      log.error((e as Error).message);
      return 1;
    }
  }
  const crd = flags.has('--crd');
  const endpoints = value('--etcd-endpoints')?.split(',').filter(Boolean);
  const leaseSeconds = value('--lease-seconds') === undefined ? undefined : Number(value('--lease-seconds'));
  if (leaseSeconds !== undefined && (!Number.isInteger(leaseSeconds) || leaseSeconds < 1)) {
    log.error(`--lease-seconds must be an integer of at least 1, got ${value('--lease-seconds')}`);
    return 64;
  }
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
      ...(endpoints ? { etcdEndpoints: endpoints } : {}),
      ...(leaseSeconds ? { leaseDurationSeconds: leaseSeconds } : {}),
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
