// Benchmark part: the README's synth command (`npm run synth`) on an already-built checkout, nothing changed:
// its wall time and where it goes (npm + task runner, each step of the task as .projen/tasks.json defines it now).
import { readFileSync, statSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';
import { ROOT, fmt, median, timeCommand, timeShell } from './measure';

interface TaskStep {
  readonly exec?: string;
  readonly execArgs?: string[];
  readonly spawn?: string;
  readonly say?: string;
  readonly builtin?: string;
  readonly cwd?: string;
}

interface Step {
  readonly line: string;
  readonly cwd: string;
}

export interface StepCost {
  readonly line: string;
  readonly ms: number[];
  /** For a `cdk8s synth` step: the app command of cdk8s.yaml run alone. */
  readonly appLine?: string;
  readonly appMs?: number[];
}

export interface EnvCost {
  readonly command: string;
  /** How many times one `npm run synth` evaluates it (once per task projen runs). */
  readonly times: number;
  readonly ms: number[];
}

export interface SynthCommandResult {
  readonly script: string;
  readonly totalMs: number[];
  readonly steps: StepCost[];
  readonly env: EnvCost[];
  readonly skippedSteps: string[];
  /** Whether the compiled output changed during the timed runs (then it was not the no-change case). */
  readonly buildChanged: boolean;
}

const readJson = (file: string) => JSON.parse(readFileSync(join(ROOT, file), 'utf8'));
const quote = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`);

interface Manifest {
  readonly env?: Record<string, string>;
  readonly tasks: Record<string, { env?: Record<string, string>; steps?: TaskStep[] }>;
}

/** What `npm run synth` runs: leaf commands in order, and the `$(...)` environment commands projen runs first. */
interface Plan {
  readonly steps: Step[];
  /** One entry per evaluation: projen evaluates the environment again for every task it runs (spawns included). */
  readonly envEvals: string[];
  readonly skipped: string[];
}

/** The `$(...)` commands projen evaluates when it starts task `name` (the manifest's environment and the task's). */
function envCommands(manifest: Manifest, name: string): string[] {
  const env = { ...manifest.env, ...manifest.tasks[name].env };
  return Object.values(env).map((v) => /^\$\((.*)\)$/s.exec(v)?.[1]).filter((c): c is string => c !== undefined);
}

/** The leaf commands a projen task runs, spawned tasks expanded in order, and its environment evaluations. */
function taskPlan(manifest: Manifest, name: string, plan: Plan): Plan {
  const task = manifest.tasks[name];
  if (!task) throw new Error(`no task ${name} in .projen/tasks.json`);
  plan.envEvals.push(...envCommands(manifest, name));
  for (const s of task.steps ?? []) {
    const cwd = join(ROOT, s.cwd ?? '.');
    if (s.spawn) taskPlan(manifest, s.spawn, plan);
    else if (s.exec) plan.steps.push({ line: s.exec, cwd });
    else if (s.execArgs) plan.steps.push({ line: s.execArgs.map(quote).join(' '), cwd });
    else if (s.builtin) plan.skipped.push(`builtin ${s.builtin} (counted in the task runner's share)`);
  }
  return plan;
}

/** The commands behind `npm run synth`: a projen task's, or the script's own `&&`-separated commands. */
function synthPlan(script: string): Plan {
  const plan: Plan = { steps: [], envEvals: [], skipped: [] };
  const projenTask = /^projen\s+([\w:-]+)\s*$/.exec(script);
  if (projenTask) return taskPlan(readJson('.projen/tasks.json'), projenTask[1], plan);
  return { ...plan, steps: script.split('&&').map((line) => ({ line: line.trim(), cwd: ROOT })) };
}

/** cdk8s.yaml's app command, when the step runs it through `cdk8s synth`. */
function appOf(step: Step): string | undefined {
  if (!/^cdk8s\s+synth\b/.test(step.line)) return undefined;
  return parse(readFileSync(join(ROOT, 'cdk8s.yaml'), 'utf8')).app as string;
}

/** Newest modification time of the compiled entry points: changes if the compile step re-emitted anything. */
function buildStamp(): number {
  return ['build/lib/index.js', 'build/apps/main.js'].map((f) => statSync(join(ROOT, f)).mtimeMs).reduce((a, b) => Math.max(a, b), 0);
}

/** `runs` timed `npm run synth` (after one untimed run), interleaved with each of its steps and environment commands alone. */
export function synthCommandBench(runs: number): SynthCommandResult {
  const script: string = readJson('package.json').scripts.synth;
  const plan = synthPlan(script);
  const steps = plan.steps.map((s) => ({ ...s, appLine: appOf(s), ms: [] as number[], appMs: [] as number[] }));
  const env = [...new Set(plan.envEvals)].map((command) => ({ command, times: plan.envEvals.filter((c) => c === command).length, ms: [] as number[] }));
  timeCommand('npm', ['run', 'synth']); // brings the checkout to the no-change state (and warms the file cache)
  const stamp = buildStamp();
  const totalMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    totalMs.push(timeCommand('npm', ['run', 'synth']).ms);
    for (const e of env) e.ms.push(timeShell(e.command).ms);
    for (const step of steps) {
      step.ms.push(timeShell(step.line, { cwd: step.cwd }).ms);
      if (step.appLine) step.appMs.push(timeShell(step.appLine, { cwd: step.cwd }).ms);
    }
  }
  const result = steps.map(({ line, ms, appLine, appMs }) => (appLine ? { line, ms, appLine, appMs } : { line, ms }));
  return { script, totalMs, steps: result, env, skippedSteps: plan.skipped, buildChanged: buildStamp() !== stamp };
}

/** The report lines for the synth-command result. */
export function synthCommandReport(r: SynthCommandResult): string[] {
  const total = median(r.totalMs);
  const stepsTotal = r.steps.reduce((sum, s) => sum + median(s.ms), 0);
  const lines = [
    `npm run synth  (script: \`${r.script}\`), median of ${r.totalMs.length}: ${fmt(total)}`,
    `  npm + task runner (total minus the steps below): ${fmt(total - stepsTotal)}`,
  ];
  for (const e of r.env) {
    lines.push(`    of which evaluating the task environment \`$(${e.command})\`: ${fmt(median(e.ms))} alone, ${e.times}x per run = ${fmt(e.times * median(e.ms))}`);
  }
  for (const s of r.steps) {
    lines.push(`  step \`${s.line}\` alone: ${fmt(median(s.ms))}`);
    if (s.appLine && s.appMs) {
      lines.push(`    of which the app (\`${s.appLine}\` alone): ${fmt(median(s.appMs))}, the cdk8s CLI: ${fmt(median(s.ms) - median(s.appMs))}`);
    }
  }
  r.skippedSteps.forEach((s) => lines.push(`  not timed alone: ${s}`));
  if (r.buildChanged) lines.push('  note: the compiled output changed during the timed runs, so this was not the no-change case');
  return lines;
}
