// Test support: pod runners that a test file starts and never has to stop itself. usePodRunner()
// registers an afterEach that stops, by PID, every runner started during the test, pass or fail.
import { NAMESPACE } from './etcd-cluster';
import type { Manifest } from './manifests';
import { PodRunner, PodRunnerOptions } from './pod-runner';

/** Starts a pod runner on `manifests` (in namespace `kvtest` unless told), stopped after the test. */
export type StartPodRunner = (manifests: Manifest[], options?: PodRunnerOptions) => PodRunner;

/**
 * Call once at the top of a test file (or of a describe block): registers an afterEach that runs
 * stopAll() on every runner the returned function started during the test, whether it passed or
 * failed, and fails the test if any of them could not be stopped. Start runners inside tests only
 * (not in beforeAll): each is stopped after the test that started it.
 */
export function usePodRunner(): StartPodRunner {
  const started: PodRunner[] = [];
  afterEach(async () => {
    const stopping = started.splice(0);
    const results = await Promise.allSettled(stopping.map((r) => r.stopAll()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  });
  return (manifests, options = { namespace: NAMESPACE }) => {
    const runner = new PodRunner(manifests, options);
    started.push(runner);
    return runner;
  };
}
