// CustomEngine: the user's command, args, env and probes passed through; its own rules; Engine.fromSpec.
import { CustomEngine } from '../../lib/engines/custom';
import type { CustomEngineOptions } from '../../lib/model/spec';
import { Engine } from '../../lib/engines/engine';
import { EtcdEngine } from '../../lib/engines/etcd';
import { EngineContainer, IEngine } from '../../lib/engines/types';
import { KVStoreProps, specInputFromProps } from '../../lib/constructs/kv-store';
import { StoreDefinition } from '../../lib/constructs/store-definition';
import { storeNames } from '../../lib/model/names';
import { EngineSpec, KVStoreSpec } from '../../lib/model/spec';

const IMAGE = 'docker.io/library/valkey:8.0';

function resolve(engine: IEngine, props: KVStoreProps = { containerImage: IMAGE }): { spec: KVStoreSpec; warnings: string[] } {
  return StoreDefinition.resolve(specInputFromProps('cache', engine, props), engine);
}

function containerOf(options: CustomEngineOptions): EngineContainer {
  const engine = Engine.custom(options);
  const { spec } = resolve(engine);
  return engine.container({ spec, names: storeNames(spec.name), clusterToken: 'cache-0123abcd', initialClusterState: 'new' });
}

describe('CustomEngine container', () => {
  test('passes command and args through', () => {
    const container = containerOf({ clientPort: 6379, command: ['valkey-server'], args: ['--port', '6379', '--replica-announce-ip', '$(POD_IP)'] });
    expect(container.command).toStrictEqual(['valkey-server']);
    expect(container.args).toStrictEqual(['--port', '6379', '--replica-announce-ip', '$(POD_IP)']);
  });

  test('leaves command and args out when not given (the image entrypoint runs)', () => {
    const container = containerOf({ clientPort: 6379 });
    expect(Object.keys(container)).not.toContain('command');
    expect(Object.keys(container)).not.toContain('args');
  });

  test('passes env through, sorted by name', () => {
    const container = containerOf({ clientPort: 6379, env: { ZETA: 'z', ALPHA: 'a', MIDDLE: 'm' } });
    expect(container.env).toStrictEqual([
      { name: 'ALPHA', value: 'a' },
      { name: 'MIDDLE', value: 'm' },
      { name: 'ZETA', value: 'z' },
    ]);
  });

  test('secretEnv: keys of Secrets, after the plain ones, sorted by name; no value in the container', () => {
    const container = containerOf({ clientPort: 6379, env: { MODE: 'cluster' }, secretEnv: { REDIS_PASSWORD: { secretName: 'valkey-auth', key: 'password' }, ACL: { secretName: 'valkey-auth', key: 'acl' } } });
    expect(container.env).toStrictEqual([
      { name: 'MODE', value: 'cluster' },
      { name: 'ACL', valueFrom: { secretKeyRef: { name: 'valkey-auth', key: 'acl' } } },
      { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'valkey-auth', key: 'password' } } },
    ]);
  });

  test('a secret-looking plain env value is warned about; secretEnv is checked', () => {
    expect(resolve(Engine.custom({ clientPort: 6379, env: { REDIS_PASSWORD: 'hunter2', MODE: 'x' } })).warnings).toStrictEqual([
      "KVStore 'cache': engine.env REDIS_PASSWORD looks like a secret, and its value is in the synthesized YAML: use engine.secretEnv (a key of a Secret) instead.",
    ]);
    const bad = () => resolve(Engine.custom({ clientPort: 6379, env: { A: 'x' }, secretEnv: { A: { secretName: 'Bad Name', key: 'k/1' } } }));
    expect(bad).toThrow(/engine\.secretEnv key must be an environment variable name other than POD_NAME, POD_NAMESPACE, POD_IP and not in engine\.env, got "A"/);
    expect(bad).toThrow(/engine\.secretEnv\.A\.secretName must be a Secret name \(a DNS-1123 subdomain\), got "Bad Name"/);
    expect(bad).toThrow(/engine\.secretEnv\.A\.key must be a Secret key \(letters, digits, "-", "_" and "\."\), got "k\/1"/);
  });

  test('env is empty without options', () => {
    expect(containerOf({ clientPort: 6379 }).env).toStrictEqual([]);
  });

  test('default probes are TCP checks of the client port', () => {
    const container = containerOf({ clientPort: 6379 });
    expect(container.startupProbe).toStrictEqual({ tcpSocket: { port: 'client' }, periodSeconds: 5, failureThreshold: 60 });
    expect(container.livenessProbe).toStrictEqual({ tcpSocket: { port: 'client' }, periodSeconds: 10 });
    expect(container.readinessProbe).toStrictEqual({ tcpSocket: { port: 'client' }, periodSeconds: 10 });
  });

  test('keeps user probes', () => {
    const startupProbe = { exec: { command: ['valkey-cli', 'ping'] }, periodSeconds: 2, failureThreshold: 30 };
    const livenessProbe = { httpGet: { path: '/live', port: 8080 }, timeoutSeconds: 3 };
    const readinessProbe = { tcpSocket: { port: 6379 }, initialDelaySeconds: 7 };
    const container = containerOf({ clientPort: 6379, startupProbe, livenessProbe, readinessProbe });
    expect([container.startupProbe, container.livenessProbe, container.readinessProbe]).toStrictEqual([startupProbe, livenessProbe, readinessProbe]);
  });

  test('a user probe replaces only its own default', () => {
    const readinessProbe = { exec: { command: ['valkey-cli', 'ping'] } };
    const container = containerOf({ clientPort: 6379, readinessProbe });
    expect(container.readinessProbe).toStrictEqual(readinessProbe);
    expect(container.livenessProbe).toStrictEqual({ tcpSocket: { port: 'client' }, periodSeconds: 10 });
  });
});

describe('CustomEngine defaults', () => {
  test('OrderedReady and no image', () => {
    expect(Engine.custom({ clientPort: 6379 }).defaults).toStrictEqual({ podManagementPolicy: 'OrderedReady' });
  });

  test('a resolved store uses OrderedReady', () => {
    expect(resolve(Engine.custom({ clientPort: 6379 })).spec.podManagementPolicy).toBe('OrderedReady');
  });

  test('ports come from the options; no peer port unless given', () => {
    const engine = Engine.custom({ clientPort: 6379 });
    expect([engine.name, engine.clientPort, engine.peerPort]).toStrictEqual(['kvstore', 6379, undefined]);
    expect(Engine.custom({ clientPort: 6379, peerPort: 16379 }).peerPort).toBe(16379);
  });

  test('needs quorum unless told otherwise', () => {
    expect(Engine.custom({ clientPort: 6379 }).quorum).toBe(true);
    expect(Engine.custom({ clientPort: 6379, quorum: false }).quorum).toBe(false);
  });

  test('fails without an image', () => {
    expect(() => resolve(Engine.custom({ clientPort: 6379 }), {})).toThrow(
      /^KVStore 'cache': image must be set: this engine has no default image, got nothing$/,
    );
  });
});

describe('CustomEngine validation', () => {
  test.each([0, 65536, 6379.5, -1])('fails on client port %p', (clientPort) => {
    expect(() => resolve(Engine.custom({ clientPort }))).toThrow(
      new RegExp(`^KVStore 'cache': engine\\.clientPort must be a port number from 1 to 65535, got ${String(clientPort).replace('.', '\\.')}$`),
    );
  });

  test('fails on a peer port out of range', () => {
    expect(() => resolve(Engine.custom({ clientPort: 6379, peerPort: 70000 }))).toThrow(
      /^KVStore 'cache': engine\.peerPort must be a port number from 1 to 65535 other than the client port, got 70000$/,
    );
  });

  test('fails on a peer port equal to the client port', () => {
    expect(() => resolve(Engine.custom({ clientPort: 6379, peerPort: 6379 }))).toThrow(
      /^KVStore 'cache': engine\.peerPort must be a port number from 1 to 65535 other than the client port, got 6379$/,
    );
  });

  test('fails on a size above maxSize', () => {
    expect(() => resolve(Engine.custom({ clientPort: 6379, maxSize: 1 }), { containerImage: IMAGE, size: 3 })).toThrow(
      /^KVStore 'cache': size must be an integer from 1 to 1 for this engine, got 3$/,
    );
  });

  test('accepts a size equal to maxSize', () => {
    expect(resolve(Engine.custom({ clientPort: 6379, maxSize: 5 }), { containerImage: IMAGE, size: 5 }).spec.size).toBe(5);
  });

  test.each([0, 100, 2.5])('fails on maxSize %p', (maxSize) => {
    expect(() => resolve(Engine.custom({ clientPort: 6379, maxSize }))).toThrow(
      new RegExp(`^KVStore 'cache': engine\\.maxSize must be an integer from 1 to 99, got ${String(maxSize).replace('.', '\\.')}$`),
    );
  });

  test.each(['POD_NAME', 'POD_NAMESPACE', 'POD_IP'])('fails on env name %s (the construct sets it)', (name) => {
    expect(() => resolve(Engine.custom({ clientPort: 6379, env: { [name]: 'x' } }))).toThrow(
      new RegExp(`^KVStore 'cache': engine\\.env key must be an environment variable name other than POD_NAME, POD_NAMESPACE, POD_IP, got "${name}"$`),
    );
  });

  test('fails on an env name starting with a digit', () => {
    expect(() => resolve(Engine.custom({ clientPort: 6379, env: { '1MODE': 'x' } }))).toThrow(
      /^KVStore 'cache': engine\.env key must be an environment variable name .*, got "1MODE"$/,
    );
  });

  test('reports every engine issue, one line each', () => {
    expect(() => resolve(Engine.custom({ clientPort: 0, env: { POD_IP: 'x' } }))).toThrow(
      /^KVStore 'cache': engine\.clientPort must be .*, got 0\nKVStore 'cache': engine\.env key must be .*, got "POD_IP"$/,
    );
  });
});

describe('Engine.fromSpec', () => {
  test('rebuilds an etcd engine from its spec', () => {
    const original = Engine.etcd({ version: '3.4.23', quotaBackendBytes: 2 ** 30, walVolume: 'wal', initialClusterToken: 'shop' });
    const rebuilt = Engine.fromSpec(JSON.parse(JSON.stringify(original.spec)) as EngineSpec);
    expect(rebuilt).toBeInstanceOf(EtcdEngine);
    expect(rebuilt.spec).toStrictEqual(original.spec);
    expect(rebuilt.defaults).toStrictEqual(original.defaults);
  });

  test('rebuilds a custom engine from its spec', () => {
    const original = Engine.custom({
      clientPort: 6379, peerPort: 16379, command: ['valkey-server'], args: ['--port', '6379'], env: { MODE: 'cluster' },
      readinessProbe: { exec: { command: ['valkey-cli', 'ping'] } }, maxSize: 9, quorum: false,
    });
    const rebuilt = Engine.fromSpec(JSON.parse(JSON.stringify(original.spec)) as EngineSpec);
    expect(rebuilt).toBeInstanceOf(CustomEngine);
    expect(rebuilt.spec).toStrictEqual(original.spec);
    expect([rebuilt.clientPort, rebuilt.peerPort, rebuilt.quorum]).toStrictEqual([6379, 16379, false]);
  });

  test('fails on an unknown kind', () => {
    expect(() => Engine.fromSpec({ kind: 'redis' } as unknown as EngineSpec)).toThrow(/^unknown engine kind "redis": expected etcd or custom$/);
  });
});
