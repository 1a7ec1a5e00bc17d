// Reconciler logs: plain lines for people, or one JSON object per line (--json) for log pipelines.

/** Structured fields of a log line (kept in JSON output). */
export type LogFields = Record<string, unknown>;

/** One log line as a listener sees it (the message without the `[n/m]` of a step; the step in fields). */
export interface LogLine {
  /** error for failures, info for everything else. */
  readonly level: 'info' | 'error';
  /** The line's text, as the plain log prints it. */
  readonly msg: string;
  /** Its structured fields (`action`, `step`, `operation`, …), as the JSON log prints them. */
  readonly fields: LogFields;
}

/** Called with every line a tapped log writes (see Log.tap). */
export type LogListener = (line: LogLine) => void;

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

  /**
   * This log, also handing every line to `listener` (the Event recorder: it sees exactly the steps
   * the log tells). A listener that throws never disturbs the log.
   */
  tap(listener: LogListener): Log {
    return new TappedLog(this, listener);
  }

  private emit(level: string, msg: string, fields: LogFields): void {
    if (this.json) {
      this.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
    } else {
      this.write(`${level === 'error' ? 'error: ' : ''}${msg}\n`);
    }
  }
}

/** A log that writes through another (whatever it is: a CLI log keeps its stderr) and tells a listener. */
class TappedLog extends Log {
  constructor(private readonly inner: Log, private readonly listener: LogListener) {
    super(false, () => undefined);
  }

  override info(msg: string, fields: LogFields = {}): void {
    this.inner.info(msg, fields);
    this.tell({ level: 'info', msg, fields });
  }

  override error(msg: string, fields: LogFields = {}): void {
    this.inner.error(msg, fields);
    this.tell({ level: 'error', msg, fields });
  }

  override step(n: number, of: number, msg: string, fields: LogFields = {}): void {
    this.inner.step(n, of, msg, fields);
    this.tell({ level: 'info', msg, fields: { step: n, steps: of, ...fields } });
  }

  private tell(line: LogLine): void {
    try {
      this.listener(line);
    } catch {
      // The listener is best-effort (Events): the log goes on.
    }
  }
}
