// Test support: tests that need a real tool (etcd, promtool, Prometheus) run where it can run, skip
// with a one-line hint where it cannot, and never skip under CI=true.
import { podRunnerUnavailable } from './pod-runner';

/**
 * `describe` when `unavailable` is undefined (the tool can run here); otherwise `describe.skip` after
 * a one-line hint, or under CI=true an error that fails the test file.
 */
export function describeWhere(what: string, unavailable: string | undefined): jest.Describe {
  if (unavailable && process.env.CI === 'true') {
    throw new Error(`CI=true, so the ${what} tests must run, but ${unavailable}`);
  }
  if (unavailable) process.stderr.write(`skipping ${what} tests: ${unavailable}\n`);
  return unavailable ? describe.skip : describe;
}

/** `describe` when etcd can run here, `describe.skip` (after the hint above) when it cannot. */
export const describeWithEtcd = describeWhere('real-etcd', podRunnerUnavailable());
