#!/usr/bin/env node
// kvstore-reconcile: the program the reconciler Job runs, and the one people run from a laptop or CI. Thin:
// loads the runtime, reads files, connects, dispatches and exits; the decisions are in lib/reconciler/cli.ts.
import { existsSync, readFileSync } from 'fs';
import { hostname } from 'os';
import type * as k8s from '@kubernetes/client-node';
import { LIBRARY_VERSION } from '../lib/model/version';
import {
  CliError, CliLog, Command, dryRunSummary, ErrorContext, errorLine, EXIT, exitCode, findCluster, helpText,
  ioReason, parseArgs, parseStoreText, PROGRAM, UsageError, Writer,
} from '../lib/reconciler/cli';
import type { Plan } from '../lib/reconciler/plan';
import { pruneSnapshots } from '../lib/reconciler/prune';

/** Where the program writes (tests inject their own). */
export interface Streams {
  /** @default process.stdout */
  readonly stdout?: Writer;
  /** @default process.stderr */
  readonly stderr?: Writer;
}

/** How to install each peer dependency a reconcile loads (the library itself needs no cdk8s-plus). */
const RECONCILER_PEERS = 'npm install @kubernetes/client-node@^1 etcd3@^1 cockatiel@^3';
const SYNTH_PEERS = 'npm install cdk8s@^2 constructs@^10';
const PEERS: Record<string, string> = {
  '@kubernetes/client-node': RECONCILER_PEERS,
  'etcd3': RECONCILER_PEERS,
  'cockatiel': RECONCILER_PEERS,
  'cdk8s': SYNTH_PEERS,
  'constructs': SYNTH_PEERS,
};

/** The reconciler's runtime (optional peer dependencies), loaded only by the commands that talk to a cluster. */
async function loadRuntime() {
  try {
    return {
      k8s: await import('@kubernetes/client-node'),
      kubeconfig: await import('../lib/reconciler/kubeconfig'),
      reconciler: await import('../lib/reconciler'),
    };
  } catch (e) {
    const missing = /Cannot find (?:module|package) '([^']+)'/.exec((e as Error).message)?.[1];
    if (missing && PEERS[missing]) throw new CliError(`${PROGRAM} needs ${missing}, which is not installed: ${PEERS[missing]}`);
    throw e;
  }
}
type Runtime = Awaited<ReturnType<typeof loadRuntime>>;

function readStoreFile(file: string, runtime: Runtime) {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`--store ${file}: cannot read ${file}: ${ioReason(e)}`);
  }
  return parseStoreText(text, file, runtime.k8s.loadYaml);
}

function prune(command: Extract<Command, { mode: 'prune' }>, log: CliLog): number {
  try {
    const { dir, prefix, preOperationPrefix, keep } = command;
    const deleted = pruneSnapshots(dir, { prefix, preOperationPrefix, keep, keepFiles: command.keepFile ? [command.keepFile] : [] });
    const which = preOperationPrefix ? `${prefix}<n>.db and ${preOperationPrefix}<hash>.db` : `${prefix}<n>.db`;
    log.info(`kept the newest ${keep} ${which} snapshot(s) in ${dir}; deleted ${deleted.length}${deleted.length ? `: ${deleted.join(', ')}` : ''}`, { deleted });
    return EXIT.ok;
  } catch (e) {
    log.error(`--prune-snapshots ${command.dir}: ${ioReason(e)}`);
    return EXIT.failed;
  }
}

function logDryRun(log: CliLog, plan: Plan): void {
  const { msg, fields } = dryRunSummary(plan);
  log.info(msg, fields);
}

async function reconcile(command: Extract<Command, { mode: 'store' | 'crd' }>, log: CliLog, kubeConfig?: k8s.KubeConfig): Promise<number> {
  let context: ErrorContext = {};
  try {
    if (command.mode === 'crd' && command.namespaceSelector && !process.env.POD_NAMESPACE) {
      throw new CliError('--namespace-selector needs POD_NAMESPACE: the namespace of the ServiceAccount kvstore-reconciler that its RoleBindings name (the operator\'s CronJob sets it)');
    }
    const runtime = await loadRuntime();
    const { KubeClient, reconcileResources, reconcileStore, RefusedError } = runtime.reconciler;
    // The document first: a bad file is reported without looking for a cluster.
    const document = command.mode === 'store' ? readStoreFile(command.file, runtime) : undefined;
    if (document) context = { store: { namespace: document.namespace, name: document.spec.name } };
    const { loadKubeConfig, useContext } = runtime.kubeconfig;
    const config = kubeConfig
      ? useContext(kubeConfig, command.context, 'the kubeconfig given')
      : loadKubeConfig(findCluster(command.kubeconfig, process.env, existsSync), command.context);
    context = { ...context, server: config.getCurrentCluster()?.server };
    const client = new KubeClient(config);
    const options = {
      force: command.force,
      ...(command.mode === 'store' && command.forceSpec ? { forceSpec: command.forceSpec } : {}),
      dryRun: command.dryRun,
      holder: process.env.POD_NAME ?? process.env.HOSTNAME ?? `${hostname()}-${process.pid}`,
      ...(command.etcdEndpoints ? { etcdEndpoints: command.etcdEndpoints } : {}),
      ...(command.etcdMemberEndpoints ? { etcdMemberEndpoint: memberEndpoint(command.etcdMemberEndpoints) } : {}),
      ...(command.etcdTlsDir ? { etcdTlsDir: command.etcdTlsDir } : {}),
      ...(command.leaseSeconds ? { leaseDurationSeconds: command.leaseSeconds } : {}),
      // A maintenance run waits for a reconcile holding the Lease rather than skip the store for a schedule.
      leaseWaitMs: (command.leaseWaitSeconds ?? (command.mode === 'store' || command.maintain ? 600 : 0)) * 1000,
    };
    if (!document) {
      const crdOptions = {
        ...options,
        ...(command.mode === 'crd' && command.namespaces ? { namespaces: command.namespaces } : {}),
        // The RoleBindings a selector makes name the reconciler's ServiceAccount in its own namespace;
        // stores elsewhere admit its pods from there.
        ...(command.mode === 'crd' && command.namespaceSelector ? { namespaceSelector: command.namespaceSelector } : {}),
        ...(command.mode === 'crd' && process.env.POD_NAMESPACE ? { operatorNamespace: process.env.POD_NAMESPACE } : {}),
        ...(command.mode === 'crd' && command.pruneImage ? { pruneImage: command.pruneImage } : {}),
      };
      if (command.maintain) {
        const { maintained, failed } = await runtime.reconciler.maintainResources(config, client, log, { ...crdOptions, ...(command.recoverQuorumLoss ? { recoverQuorumLoss: true } : {}) });
        log.info(`maintenance: ${maintained} store(s) maintained, ${failed} failed`, { maintained, failed });
        return failed > 0 ? EXIT.failed : EXIT.ok;
      }
      const { reconciled, failed } = await reconcileResources(config, client, log, crdOptions);
      if (command.dryRun) log.info(`dry run: ${reconciled + failed} store(s) planned, ${failed} failed`, { dryRun: true, reconciled, failed });
      return failed > 0 ? EXIT.failed : EXIT.ok;
    }
    if (command.mode === 'store' && command.maintain) {
      await runtime.reconciler.maintainStore(document, client, log, { ...options, ...(command.recoverQuorumLoss ? { recoverQuorumLoss: true } : {}) });
      return EXIT.ok;
    }
    try {
      const { plan } = await reconcileStore(document, client, log, options);
      if (command.dryRun) logDryRun(log, plan);
    } catch (e) {
      if (command.dryRun && e instanceof RefusedError) logDryRun(log, e.plan);
      throw e;
    }
    return EXIT.ok;
  } catch (e) {
    log.error(errorLine(e, context), { error: (e as Error).name });
    return exitCode(e);
  }
}

/**
 * The program: returns its exit code. `kubeConfig` (tests) replaces finding the cluster; `streams`
 * replaces stdout and stderr.
 */
export async function main(argv: string[], kubeConfig?: k8s.KubeConfig, streams: Streams = {}): Promise<number> {
  const stdout = streams.stdout ?? ((text: string) => void process.stdout.write(text));
  const stderr = streams.stderr ?? ((text: string) => void process.stderr.write(text));
  let command: Command;
  try {
    command = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    new CliLog(argv.includes('--json'), stdout, stderr).error(`${e.message}; run ${PROGRAM} --help for usage`);
    return EXIT.usage;
  }
  switch (command.mode) {
    case 'help':
      stdout(helpText(LIBRARY_VERSION));
      return EXIT.ok;
    case 'version':
      stdout(`${LIBRARY_VERSION}\n`);
      return EXIT.ok;
    case 'prune':
      return prune(command, new CliLog(command.json, stdout, stderr));
    default:
      return reconcile(command, new CliLog(command.json, stdout, stderr), kubeConfig);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}

/** Member `i`'s URL from --etcd-member-endpoints; an ordinal beyond the list is an error naming the flag. */
function memberEndpoint(urls: readonly string[]): (ordinal: number) => string {
  return (ordinal) => {
    const url = urls[ordinal];
    if (!url) throw new Error(`--etcd-member-endpoints lists ${urls.length} URL(s): none for member ${ordinal}`);
    return url;
  };
}
