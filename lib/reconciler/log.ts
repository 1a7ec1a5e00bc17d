// Reconciler logs: plain lines for people, or one JSON object per line (--json) for log pipelines.

/** Structured fields of a log line (kept in JSON output). */
export type LogFields = Record<string, unknown>;

/** The reconciler's log: plain lines, or JSON lines with `json`. */
export class Log {
  constructor(private readonly json: boolean, private readonly write: (line: string) => void = (l) => process.stdout.write(l)) {}

  /** A line about progress. */
  info(msg: string, fields: LogFields = {}): void {
    this.emit('info', msg, fields);
  }

  /** A line about a failure. */
  error(msg: string, fields: LogFields = {}): void {
    this.emit('error', msg, fields);
  }

  /** One step of a plan: `[n/m] message`. */
  step(n: number, of: number, msg: string, fields: LogFields = {}): void {
    this.emit('info', `[${n}/${of}] ${msg}`, { step: n, steps: of, ...fields });
  }

  private emit(level: string, msg: string, fields: LogFields): void {
    if (this.json) {
      this.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
    } else {
      this.write(`${level === 'error' ? 'error: ' : ''}${msg}\n`);
    }
  }
}
