// The pure kubelet rules the pod runner relies on: `$(VAR)` expansion, the container environment,
// named ports and DNS names, checked against what Kubernetes documents.
import { containerEnv, expand, podDnsNames, PodFacts, resolvePort, serviceDnsNames } from './kubelet';
import type { Manifest } from './manifests';

const POD: PodFacts = { name: 'orders-1', namespace: 'kvtest', ip: '127.20.1.2' };

function configMap(name: string, data: Record<string, string>): Manifest {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'kvtest' }, data };
}

function secret(name: string, fields: { data?: Record<string, string>; stringData?: Record<string, string> }): Manifest {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'kvtest' }, ...fields };
}

const base64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** The environment as a plain object, for whole-value comparisons. */
function envOf(container: any, objects: Manifest[] = []): Record<string, string> {
  return Object.fromEntries(containerEnv(container, POD, objects));
}

describe('expand', () => {
  const vars = new Map([['NAME', 'orders-0'], ['NS', 'kvtest'], ['REF', '$(NAME)']]);

  test.each([
    ['a defined variable is replaced', '--name=$(NAME)', '--name=orders-0'],
    ['an undefined variable is left as written', '--name=$(NOPE)', '--name=$(NOPE)'],
    ['$$(VAR) yields the literal $(VAR)', '--name=$$(NAME)', '--name=$(NAME)'],
    ['$$ yields $', 'cost: $$5', 'cost: $5'],
    ['$$$(VAR) yields $ then the value', '$$$(NAME)', '$orders-0'],
    ['a lone $ at the end is kept', 'price$', 'price$'],
    ['a lone $ before a space is kept', 'a $ b', 'a $ b'],
    ['$x is kept', '$NAME and $x', '$NAME and $x'],
    ['an unclosed $(VAR is kept', '--name=$(NAME', '--name=$(NAME'],
    ['several variables in one string', 'http://$(NAME).peers.$(NS).svc:2380', 'http://orders-0.peers.kvtest.svc:2380'],
    ['defined and undefined side by side', '$(NAME)/$(NOPE)/$(NS)', 'orders-0/$(NOPE)/kvtest'],
    ['a value containing $(OTHER) is not expanded again', 'ref=$(REF)', 'ref=$(NAME)'],
    ['an empty name is not a variable', '$()', '$()'],
    ['a string without $ is unchanged', 'plain', 'plain'],
  ])('%s', (_, input, expected) => {
    expect(expand(input, vars)).toBe(expected);
  });
});

describe('containerEnv', () => {
  test('plain values are set as given', () => {
    expect(envOf({ env: [{ name: 'A', value: 'one' }, { name: 'B', value: '' }] })).toEqual({ A: 'one', B: '' });
  });

  test('a value is expanded only against variables defined earlier in the list', () => {
    const env = envOf({
      env: [
        { name: 'FIRST', value: 'x' },
        { name: 'BOTH', value: '$(FIRST)-$(LATER)' },
        { name: 'LATER', value: 'y' },
      ],
    });
    expect(env.BOTH).toBe('x-$(LATER)');
  });

  test('a value is expanded against variables from envFrom', () => {
    const env = envOf({
      envFrom: [{ configMapRef: { name: 'cfg' } }],
      env: [{ name: 'URL', value: 'http://$(HOST):2379' }],
    }, [configMap('cfg', { HOST: 'orders-0' })]);
    expect(env.URL).toBe('http://orders-0:2379');
  });

  test('fieldRef gives the pod name, namespace and IP', () => {
    const env = envOf({
      env: [
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      ],
    });
    expect(env).toEqual({ POD_NAME: 'orders-1', POD_NAMESPACE: 'kvtest', POD_IP: '127.20.1.2' });
  });

  test('configMapKeyRef reads the key from the ConfigMap', () => {
    const env = envOf({ env: [{ name: 'MEMBER', valueFrom: { configMapKeyRef: { name: 'names', key: 'member' } } }] },
      [configMap('names', { member: 'alpha', other: 'beta' })]);
    expect(env).toEqual({ MEMBER: 'alpha' });
  });

  test('secretKeyRef decodes Secret data from base64', () => {
    const env = envOf({ env: [{ name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } }] },
      [secret('creds', { data: { password: base64('s3cret') } })]);
    expect(env).toEqual({ PASSWORD: 's3cret' });
  });

  test('secretKeyRef reads Secret stringData as plain text', () => {
    const env = envOf({ env: [{ name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } }] },
      [secret('creds', { stringData: { password: 'cGxhaW4=' } })]);
    expect(env).toEqual({ PASSWORD: 'cGxhaW4=' });
  });

  test('a ref value is not expanded', () => {
    const env = envOf({
      env: [
        { name: 'A', value: 'a' },
        { name: 'FROM_CM', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k' } } },
      ],
    }, [configMap('cfg', { k: '$(A)' })]);
    expect(env.FROM_CM).toBe('$(A)');
  });

  test('an optional key ref whose key is missing is skipped', () => {
    const env = envOf({
      env: [
        { name: 'CM', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'absent', optional: true } } },
        { name: 'SECRET', valueFrom: { secretKeyRef: { name: 'creds', key: 'absent', optional: true } } },
        { name: 'KEPT', value: 'yes' },
      ],
    }, [configMap('cfg', { k: 'v' }), secret('creds', { stringData: { k: 'v' } })]);
    expect(env).toEqual({ KEPT: 'yes' });
  });

  test('an optional envFrom source that does not exist is skipped', () => {
    const env = envOf({
      envFrom: [{ configMapRef: { name: 'absent', optional: true } }, { secretRef: { name: 'absent', optional: true } }],
      env: [{ name: 'KEPT', value: 'yes' }],
    });
    expect(env).toEqual({ KEPT: 'yes' });
  });

  test('fails when a required key ref names a ConfigMap that does not exist', () => {
    expect(() => envOf({ env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'absent', key: 'k' } } }] }))
      .toThrow(/ConfigMap kvtest\/absent referenced by the pod does not exist/);
  });

  test('fails when a required key ref names a Secret that does not exist', () => {
    expect(() => envOf({ env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'absent', key: 'k' } } }] }))
      .toThrow(/Secret kvtest\/absent referenced by the pod does not exist/);
  });

  test('fails when a required key ref names a key the object does not have', () => {
    expect(() => envOf({ env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'absent' } } }] }, [configMap('cfg', { k: 'v' })]))
      .toThrow(/ConfigMap cfg has no key absent/);
  });

  test('fails when a required envFrom source does not exist', () => {
    expect(() => envOf({ envFrom: [{ secretRef: { name: 'absent' } }] }))
      .toThrow(/Secret absent referenced by envFrom does not exist/);
  });

  test('envFrom sets every key, with the prefix, from ConfigMaps and Secrets', () => {
    const env = envOf({
      envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'ETCD_' }, { secretRef: { name: 'creds' } }],
    }, [configMap('cfg', { SNAPSHOT_COUNT: '500', MAX_TXN_OPS: '3' }), secret('creds', { data: { TOKEN: base64('t0ken') } })]);
    expect(env).toEqual({ ETCD_SNAPSHOT_COUNT: '500', ETCD_MAX_TXN_OPS: '3', TOKEN: 't0ken' });
  });

  test('a later envFrom source overrides an earlier one for the same key', () => {
    const env = envOf({ envFrom: [{ configMapRef: { name: 'first' } }, { configMapRef: { name: 'second' } }] },
      [configMap('first', { K: 'first' }), configMap('second', { K: 'second' })]);
    expect(env).toEqual({ K: 'second' });
  });

  test('env overrides envFrom for the same name', () => {
    const env = envOf({
      envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'ETCD_' }],
      env: [{ name: 'ETCD_SNAPSHOT_COUNT', value: '100' }],
    }, [configMap('cfg', { SNAPSHOT_COUNT: '500', OTHER: 'kept' })]);
    expect(env).toEqual({ ETCD_SNAPSHOT_COUNT: '100', ETCD_OTHER: 'kept' });
  });
});

describe('resolvePort', () => {
  const etcd = { name: 'etcd', ports: [{ name: 'client', containerPort: 2379 }, { name: 'peer', containerPort: 2380 }] };

  test('a number is the port', () => {
    expect(resolvePort(etcd, 8080)).toBe(8080);
  });

  test('a numeric string is the port', () => {
    expect(resolvePort(etcd, '8080')).toBe(8080);
  });

  test('a name is looked up among the container ports', () => {
    expect(resolvePort(etcd, 'client')).toBe(2379);
    expect(resolvePort(etcd, 'peer')).toBe(2380);
  });

  test('fails on a name the container does not have', () => {
    expect(() => resolvePort(etcd, 'metrics')).toThrow(/container etcd has no port named metrics/);
  });
});

describe('DNS names', () => {
  test('a StatefulSet pod behind its headless Service', () => {
    expect(podDnsNames('orders-0', 'orders-peers', 'kvtest', 'cluster.local')).toEqual([
      'orders-0.orders-peers.kvtest.svc.cluster.local',
      'orders-0.orders-peers.kvtest.svc',
      'orders-0.orders-peers.kvtest',
      'orders-0.orders-peers',
    ]);
  });

  test('a Service, in another cluster domain', () => {
    expect(serviceDnsNames('orders', 'kvtest', 'example.internal')).toEqual([
      'orders.kvtest.svc.example.internal',
      'orders.kvtest.svc',
      'orders.kvtest',
      'orders',
    ]);
  });
});

describe('edge cases of the documented rules', () => {
  test('an unclosed reference does not stop $$ reduction', () => {
    expect(expand('$(A $$B', new Map())).toBe('$(A $B');
  });

  test('an optional key ref to an object that does not exist is skipped', () => {
    expect(envOf({ env: [{ name: 'CM', valueFrom: { configMapKeyRef: { name: 'absent', key: 'k', optional: true } } }, { name: 'KEPT', value: 'yes' }] })).toEqual({ KEPT: 'yes' });
  });

  test('envFrom only sees objects of the pod namespace', () => {
    const other = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: 'elsewhere' }, data: { A: '1' } };
    expect(() => envOf({ envFrom: [{ configMapRef: { name: 'cm' } }] }, [other as any])).toThrow(/ConfigMap cm referenced by envFrom does not exist/);
  });
});
