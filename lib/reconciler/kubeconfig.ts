// Loads the kubeconfig the CLI found (a file list or the pod's service account) on the context asked for,
// saying in one line what is wrong and what to do. Loaded only by the commands that talk to a cluster.
import { accessSync, constants } from 'fs';
import * as k8s from '@kubernetes/client-node';
import { CliError, ClusterSource, ioReason } from './cli';

/** The kubeconfig of a source, on the context asked for. */
export function loadKubeConfig(source: ClusterSource, context: string | undefined): k8s.KubeConfig {
  const config = new k8s.KubeConfig();
  if (source.kind === 'in-cluster') {
    config.loadFromCluster();
    return useContext(config, context, 'the pod\'s service account');
  }
  const fix = source.origin.startsWith('KUBECONFIG') ? 'fix KUBECONFIG or pass --kubeconfig FILE' : 'pass --kubeconfig with a readable file';
  for (const file of source.files) {
    try {
      accessSync(file, constants.R_OK);
    } catch (e) {
      throw new CliError(`${source.origin}: cannot read ${file}: ${ioReason(e)}; ${fix}`);
    }
  }
  try {
    config.loadFromFile(source.files[0]);
    for (const file of source.files.slice(1)) {
      const more = new k8s.KubeConfig();
      more.loadFromFile(file);
      config.mergeConfig(more);
    }
  } catch (e) {
    throw new CliError(`${source.origin}: not a valid kubeconfig: ${(e as Error).message.split('\n')[0]}; ${fix}`);
  }
  return useContext(config, context, source.origin);
}

/** Switches to `context` (or checks the current one), naming the contexts there when it cannot. */
export function useContext(config: k8s.KubeConfig, context: string | undefined, origin: string): k8s.KubeConfig {
  const contexts = config.getContexts().map((c) => c.name).join(', ') || 'none';
  if (context !== undefined) {
    if (!config.getContextObject(context)) throw new CliError(`--context ${context}: ${origin} has no such context (it has: ${contexts})`);
    config.setCurrentContext(context);
  }
  if (!config.getCurrentCluster()) {
    const current = config.getCurrentContext();
    throw new CliError(`${origin}: ${current ? `context ${current} names no cluster` : 'no current-context'}; pass --context NAME (contexts: ${contexts})`);
  }
  return config;
}

