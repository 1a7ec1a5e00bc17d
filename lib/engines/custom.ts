// The bring-your-own-image engine: ports, command, environment and probes all come from the user.
import type { SpecIssue } from '../model/issues';
import { isSubdomainName, MAX_SIZE } from '../model/schema';
import type { CustomEngineSpec, EngineDefaults, KVStoreSpec, ProbeSpec } from '../model/spec';
import { EngineContainer, EngineReport, IEngine, POD_ENV } from './types';

const isPort = (p: unknown) => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** Environment variable names that usually carry a secret. */
const SECRET_LIKE = /PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_?KEY|CREDENTIAL|API_?KEY/i;

export class CustomEngine implements IEngine {
  readonly name = 'kvstore';
  readonly spec: CustomEngineSpec;
  readonly defaults: EngineDefaults = { podManagementPolicy: 'OrderedReady' };

  constructor(spec: CustomEngineSpec) {
    this.spec = spec;
  }

  get clientPort(): number {
    return this.spec.clientPort;
  }

  get peerPort(): number | undefined {
    return this.spec.peerPort;
  }

  get quorum(): boolean {
    return this.spec.quorum ?? true;
  }

  validate(spec: KVStoreSpec): EngineReport {
    const issues: SpecIssue[] = [];
    const e = this.spec;
    if (!isPort(e.clientPort)) {
      issues.push({ field: 'engine.clientPort', value: e.clientPort, allowed: 'a port number from 1 to 65535' });
    }
    if (e.peerPort !== undefined && (!isPort(e.peerPort) || e.peerPort === e.clientPort)) {
      issues.push({ field: 'engine.peerPort', value: e.peerPort, allowed: 'a port number from 1 to 65535 other than the client port' });
    }
    const maxSize = e.maxSize ?? MAX_SIZE;
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > MAX_SIZE) {
      issues.push({ field: 'engine.maxSize', value: e.maxSize, allowed: `an integer from 1 to ${MAX_SIZE}` });
    } else if (spec.size > maxSize) {
      issues.push({ field: 'size', value: spec.size, allowed: `an integer from 1 to ${maxSize} for this engine` });
    }
    const reserved: string[] = Object.values(POD_ENV);
    const warnings: string[] = [];
    for (const name of Object.keys(e.env ?? {})) {
      if (!ENV_NAME.test(name) || reserved.includes(name)) {
        issues.push({ field: 'engine.env key', value: name, allowed: `an environment variable name other than ${reserved.join(', ')}` });
      }
      if (SECRET_LIKE.test(name)) {
        warnings.push(`KVStore '${spec.name}': engine.env ${name} looks like a secret, and its value is in the synthesized YAML: use engine.secretEnv (a key of a Secret) instead.`);
      }
    }
    for (const [name, ref] of Object.entries(e.secretEnv ?? {})) {
      if (!ENV_NAME.test(name) || reserved.includes(name) || (e.env ?? {})[name] !== undefined) {
        issues.push({ field: 'engine.secretEnv key', value: name, allowed: `an environment variable name other than ${reserved.join(', ')} and not in engine.env` });
      }
      if (!isSubdomainName(ref?.secretName ?? '')) {
        issues.push({ field: `engine.secretEnv.${name}.secretName`, value: ref?.secretName, allowed: 'a Secret name (a DNS-1123 subdomain)' });
      }
      if (!/^[-._a-zA-Z0-9]+$/.test(ref?.key ?? '')) {
        issues.push({ field: `engine.secretEnv.${name}.key`, value: ref?.key, allowed: 'a Secret key (letters, digits, "-", "_" and ".")' });
      }
    }
    return { issues, warnings };
  }

  container(): EngineContainer {
    const tcp: ProbeSpec = { tcpSocket: { port: 'client' }, periodSeconds: 10 };
    return {
      ...(this.spec.command ? { command: this.spec.command } : {}),
      ...(this.spec.args ? { args: this.spec.args } : {}),
      env: [
        ...Object.entries(this.spec.env ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, value]) => ({ name, value })),
        ...Object.entries(this.spec.secretEnv ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([name, ref]) => ({ name, valueFrom: { secretKeyRef: { name: ref.secretName, key: ref.key } } })),
      ],
      startupProbe: this.spec.startupProbe ?? { tcpSocket: { port: 'client' }, periodSeconds: 5, failureThreshold: 60 },
      livenessProbe: this.spec.livenessProbe ?? tcp,
      readinessProbe: this.spec.readinessProbe ?? tcp,
    };
  }
}
