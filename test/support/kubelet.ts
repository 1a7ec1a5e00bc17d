// Test support: the pure parts of what a kubelet does for a container, as documented by Kubernetes:
// environment from env/envFrom (plain values, fieldRef, configMap/secret key refs), `$(VAR)`
// expansion in env values, command and args, named-port lookup, and the pod's DNS names.
import type { Manifest } from './manifests';

/** What the kubelet knows about a pod when it builds the container's environment. */
export interface PodFacts {
  readonly name: string;
  readonly namespace: string;
  readonly ip: string;
  readonly labels?: Record<string, string>;
}

/**
 * Kubernetes' `$(VAR)` expansion (k8s.io/kubernetes third_party/forked/golang/expansion):
 * `$(NAME)` becomes the value when NAME is defined and stays as written when it is not;
 * `$$` becomes `$` (so `$$(NAME)` yields the literal `$(NAME)`); any other `$` is kept.
 */
export function expand(input: string, vars: ReadonlyMap<string, string>): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== '$' || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close === -1) {
        // An unclosed reference: keep `$(` and scan on, so a later `$$` still becomes `$` (as in Go).
        out += '$(';
        i++;
        continue;
      }
      const name = input.slice(i + 2, close);
      out += vars.has(name) ? vars.get(name)! : `$(${name})`;
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

function objectByName(objects: readonly Manifest[], kind: string, name: string, namespace: string): Manifest {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace ?? namespace) === namespace);
  if (!found) throw new Error(`${kind} ${namespace}/${name} referenced by the pod does not exist`);
  return found;
}

/** The string data of a ConfigMap or Secret (Secret `data` is base64, `stringData` plain). */
export function dataOf(obj: Manifest): Record<string, string> {
  if (obj.kind === 'Secret') {
    const decoded = Object.fromEntries(Object.entries(obj.data ?? {}).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString('utf8')]));
    return { ...decoded, ...(obj.stringData ?? {}) };
  }
  return { ...(obj.data ?? {}) };
}

function fieldRef(path: string, pod: PodFacts): string {
  switch (path) {
    case 'metadata.name': return pod.name;
    case 'metadata.namespace': return pod.namespace;
    case 'status.podIP': return pod.ip;
    case 'status.podIPs': return pod.ip;
    default: {
      const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
      if (label) return pod.labels?.[label[1]] ?? '';
      throw new Error(`fieldRef ${path} is not simulated`);
    }
  }
}

/**
 * The container's environment in the kubelet's order: envFrom sources first, then env entries,
 * each env value expanded against the variables defined before it.
 */
export function containerEnv(container: any, pod: PodFacts, objects: readonly Manifest[]): Map<string, string> {
  const vars = new Map<string, string>();
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef ?? source.secretRef;
    const kind = source.configMapRef ? 'ConfigMap' : 'Secret';
    const obj = objects.find((o) => o.kind === kind && o.metadata.name === ref.name && (o.metadata.namespace ?? pod.namespace) === pod.namespace);
    if (!obj) {
      if (ref.optional) continue;
      throw new Error(`${kind} ${ref.name} referenced by envFrom does not exist`);
    }
    for (const [k, v] of Object.entries(dataOf(obj))) vars.set(`${source.prefix ?? ''}${k}`, v);
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      vars.set(e.name, expand(String(e.value), vars));
    } else if (e.valueFrom?.fieldRef) {
      vars.set(e.name, fieldRef(e.valueFrom.fieldRef.fieldPath, pod));
    } else if (e.valueFrom?.configMapKeyRef || e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.configMapKeyRef ?? e.valueFrom.secretKeyRef;
      const kind = e.valueFrom.configMapKeyRef ? 'ConfigMap' : 'Secret';
      if (ref.optional && !objects.some((o) => o.kind === kind && o.metadata.name === ref.name && (o.metadata.namespace ?? pod.namespace) === pod.namespace)) continue;
      const data = dataOf(objectByName(objects, kind, ref.name, pod.namespace));
      if (!(ref.key in data)) {
        if (ref.optional) continue;
        throw new Error(`${kind} ${ref.name} has no key ${ref.key}`);
      }
      vars.set(e.name, data[ref.key]);
    } else {
      vars.set(e.name, '');
    }
  }
  return vars;
}

/** The port number a probe or Service names (`client`) or gives (2379). */
export function resolvePort(container: any, port: number | string): number {
  if (typeof port === 'number') return port;
  if (/^[0-9]+$/.test(port)) return Number(port);
  const found = (container.ports ?? []).find((p: any) => p.name === port);
  if (!found) throw new Error(`container ${container.name} has no port named ${port}`);
  return found.containerPort;
}

/** The names cluster DNS gives a StatefulSet pod behind its headless Service. */
export function podDnsNames(pod: string, headless: string, namespace: string, clusterDomain: string): string[] {
  return [`${pod}.${headless}.${namespace}.svc.${clusterDomain}`, `${pod}.${headless}.${namespace}.svc`, `${pod}.${headless}.${namespace}`, `${pod}.${headless}`];
}

/** The names of a Service. */
export function serviceDnsNames(service: string, namespace: string, clusterDomain: string): string[] {
  return [`${service}.${namespace}.svc.${clusterDomain}`, `${service}.${namespace}.svc`, `${service}.${namespace}`, service];
}
