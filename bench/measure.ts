// Benchmark helpers shared by the bench parts: medians, timed child processes, temporary directories.
import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

/** The repository root (the bench runs as build/bench/*.js). */
export const ROOT = join(__dirname, '..', '..');
/** The project's node_modules/.bin, put first on PATH the way npm and projen do for scripts and tasks. */
export const BIN = join(ROOT, 'node_modules', '.bin');

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface Timed {
  readonly ms: number;
  readonly stdout: string;
}

export interface CommandOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

/** Wall time of one command in ms; fails loudly if the command fails. */
export function timeCommand(cmd: string, args: string[], options: CommandOptions = {}): Timed {
  const started = process.hrtime.bigint();
  const r = spawnSync(cmd, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    encoding: 'utf8',
    timeout: options.timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.error ?? ''}`);
  return { ms, stdout: r.stdout };
}

/** Wall time of one shell command line, run with the project's node_modules/.bin first on PATH. */
export function timeShell(line: string, options: CommandOptions = {}): Timed {
  const path = `${BIN}:${options.env?.PATH ?? process.env.PATH}`;
  return timeCommand('sh', ['-c', line], { ...options, env: { ...options.env, PATH: path } });
}

export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-bench-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
export const verdict = (ok: boolean) => (ok ? 'meets target' : 'MISSES target');
