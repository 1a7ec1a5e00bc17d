// Test support for fault injection: runs kvstore-reconcile (apps/reconcile.ts) as a child process
// with --json against the API double, reads its log line by line, and SIGKILLs it right after it
// printed its k-th step boundary: a log line that carries an `action` or a `step` field (a day-2
// action done, or a plan step done).
import { spawn } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { createInterface } from 'readline';
import { canonicalJson, StoreDocument } from '../../lib/model/document';
import { ApiServer } from './api-server';

const RECONCILE = join(__dirname, '..', '..', 'apps', 'reconcile.ts');

/** One step boundary of a reconciler run: the moment right after the logged action was done. */
export interface Boundary {
  /** `action`, what it acted on and what changed (`add-learner kv-3`, `update StatefulSet/kv (spec.replicas)`), or `step n/m`. */
  readonly label: string;
  /** The log line as printed. */
  readonly fields: Record<string, unknown>;
}

/** How one child run ended. */
export interface ChildRun {
  /** Every boundary it printed (up to the one it was killed at). */
  readonly boundaries: readonly Boundary[];
  /** Killed right after boundary `killedAt` (1-based); undefined when it exited by itself first. */
  readonly killedAt?: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Its whole log, stdout then stderr, for failure messages. */
  readonly output: string;
}

export interface ChildOptions {
  /** The reconciler's `--etcd-endpoints`. */
  readonly etcdEndpoints: readonly string[];
  /** The Lease holder (POD_NAME). */
  readonly holder: string;
  /** More arguments (`--maintain`, `--etcd-member-endpoints`). @default none */
  readonly args?: readonly string[];
  /** `--lease-seconds`: how long the next run waits for a killed run's Lease. @default 3 */
  readonly leaseSeconds?: number;
  /** SIGKILL right after the k-th boundary (1-based). @default - let it run to its end */
  readonly killAt?: number;
  /** Kill it anyway, and fail, after this long. @default 120000 */
  readonly timeoutMs?: number;
}

/** The boundary a JSON log line marks, if it marks one. */
export function boundaryOf(line: string): Boundary | undefined {
  let fields: Record<string, unknown>;
  try {
    fields = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (fields.action === undefined && fields.step === undefined) return undefined;
  const on = fields.member ?? fields.pvc ?? fields.object ?? fields.job ?? fields.phase;
  const changes = Array.isArray(fields.changes) ? ` (${fields.changes.join(', ')})` : '';
  const label = fields.action !== undefined ? `${fields.action}${on !== undefined ? ` ${on}` : ''}${changes}` : `step ${fields.step}/${fields.steps}`;
  return { label, fields };
}

/**
 * Runs `kvstore-reconcile --store <document> --json` once; with `killAt`, SIGKILLs it as soon as it
 * printed that boundary. Resolves once the process has exited (killed or not), never leaving it
 * running.
 */
export async function runReconcilerChild(api: ApiServer, document: StoreDocument, options: ChildOptions): Promise<ChildRun> {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-kill-at-'));
  try {
    const store = join(dir, 'store.json');
    writeFileSync(store, canonicalJson(document));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', RECONCILE, '--store', store, '--json',
      '--etcd-endpoints', options.etcdEndpoints.join(','), '--lease-seconds', String(options.leaseSeconds ?? 3), ...(options.args ?? [])], {
      env: { ...process.env, KUBECONFIG: kubeconfig, POD_NAME: options.holder }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const boundaries: Boundary[] = [];
    const out: string[] = [];
    const err: string[] = [];
    let killedAt: number | undefined;
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    };
    createInterface({ input: child.stderr! }).on('line', (l) => err.push(l));
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (killedAt !== undefined) return;
      out.push(l);
      const b = boundaryOf(l);
      if (!b) return;
      boundaries.push(b);
      if (boundaries.length === options.killAt) {
        // Only if it is still running: it may have exited between printing and our reading.
        if (child.exitCode === null && child.signalCode === null) killedAt = boundaries.length;
        kill();
      }
    });
    const timer = setTimeout(kill, options.timeoutMs ?? 120_000);
    try {
      const { code, signal } = await exited;
      const output = [...out, ...err].join('\n');
      if (signal === 'SIGKILL' && killedAt === undefined) throw new Error(`kvstore-reconcile (${options.holder}) timed out after ${options.timeoutMs ?? 120_000} ms:\n${output}`);
      return { boundaries, killedAt, code, signal, output };
    } finally {
      clearTimeout(timer);
      kill();
      await exited;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
