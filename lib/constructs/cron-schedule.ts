// How often a CronJob schedule runs: the longest wait between two of its runs, read the way
// Kubernetes' CronJob controller reads a schedule (robfig/cron's standard parser), so an alert on a
// CronJob's last success can be measured against the schedule it was given.

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** minute, hour, day of month, month, day of week. */
const RANGES: ReadonlyArray<readonly [number, number]> = [[0, 59], [0, 23], [1, 31], [1, 12], [0, 6]];

interface Field {
  readonly values: ReadonlySet<number>;
  /** A plain `*`: robfig/cron then ANDs day of month and day of week instead of ORing them. */
  readonly star: boolean;
}

function parseField(text: string, [min, max]: readonly [number, number]): Field | undefined {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|([0-9]+)(?:-([0-9]+))?)(?:\/([0-9]+))?$/.exec(part);
    if (!m) return undefined;
    const step = m[4] !== undefined ? Number(m[4]) : 1;
    const start = m[1] === '*' ? min : Number(m[2]);
    // `N/step` means N to the end of the range, as in robfig/cron.
    const end = m[1] === '*' ? max : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? max : start;
    if (step < 1 || start < min || end > max || start > end) return undefined;
    for (let v = start; v <= end; v += step) values.add(v);
  }
  return { values, star: text === '*' || text === '*/1' };
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
/** Two years from a leap year's first day: every month and weekday combination but a leap day's. */
const WINDOW_START = Date.UTC(2024, 0, 1);
const WINDOW_DAYS = 731;

/**
 * The longest time between two consecutive runs of a cron schedule (five fields or a macro), in
 * seconds, over two years of runs (in UTC: a CronJob's timeZone shifts runs, not the gaps between
 * them, daylight saving time aside). Undefined when the schedule cannot be read, or runs less than
 * twice in those two years (a leap day's schedule, or a 30th of February).
 */
export function longestCronGapSeconds(schedule: string): number | undefined {
  const fields = (MACROS[schedule] ?? schedule).trim().split(/\s+/);
  if (fields.length !== 5) return undefined;
  const parsed = fields.map((f, i) => parseField(f, RANGES[i]));
  if (parsed.some((f) => f === undefined)) return undefined;
  const [minute, hour, dom, month, dow] = parsed as Field[];
  const minutes = [...minute.values].sort((a, b) => a - b);
  const hours = [...hour.values].sort((a, b) => a - b);
  let previous: number | undefined;
  let longest = 0;
  for (let d = 0; d < WINDOW_DAYS; d++) {
    const day = new Date(WINDOW_START + d * DAY_MS);
    const weekday = day.getUTCDay();
    const domMatch = dom.values.has(day.getUTCDate());
    const dowMatch = dow.values.has(weekday);
    const dayMatch = dom.star || dow.star ? domMatch && dowMatch : domMatch || dowMatch;
    if (!month.values.has(day.getUTCMonth() + 1) || !dayMatch) continue;
    for (const h of hours) {
      for (const m of minutes) {
        const t = day.getTime() + (h * 60 + m) * MINUTE_MS;
        if (previous !== undefined) longest = Math.max(longest, t - previous);
        previous = t;
      }
    }
  }
  return longest > 0 ? longest / 1000 : undefined;
}
