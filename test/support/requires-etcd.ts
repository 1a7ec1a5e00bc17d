// Test support: real-etcd tests run where etcd can run, skip with a one-line hint where it cannot,
// and never skip under CI=true.
import { podRunnerUnavailable } from './pod-runner';

const unavailable = podRunnerUnavailable();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`CI=true, so the real-etcd tests must run, but ${unavailable}`);
}
if (unavailable) process.stderr.write(`skipping real-etcd tests: ${unavailable}\n`);

/** `describe` when etcd can run here, `describe.skip` (after the hint above) when it cannot. */
export const describeWithEtcd = unavailable ? describe.skip : describe;
