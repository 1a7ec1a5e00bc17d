// Engine: the factory users call (`Engine.etcd()`, `Engine.custom()`), and the way back from spec data.
import type { CustomEngineOptions, EngineSpec } from '../model/spec';
import { CustomEngine } from './custom';
import { AutoCompactionMode, DEFAULT_ETCD_VERSION, EtcdEngine, EtcdOptions } from './etcd';
import type { IEngine } from './types';

/** Builds the engine a store runs: `Engine.etcd()` (the default) or `Engine.custom()` for any image. */
export class Engine {
  /** etcd, the default engine. */
  static etcd(options: EtcdOptions = {}): IEngine {
    return new EtcdEngine({
      kind: 'etcd',
      version: options.version ?? DEFAULT_ETCD_VERSION,
      autoCompactionMode: options.autoCompactionMode ?? 'periodic',
      autoCompactionRetention: options.autoCompactionRetention ?? '1h',
      ...(options.quotaBackendBytes !== undefined ? { quotaBackendBytes: options.quotaBackendBytes } : {}),
      ...(options.walVolume !== undefined ? { walVolume: options.walVolume } : {}),
      ...(options.initialClusterToken !== undefined ? { initialClusterToken: options.initialClusterToken } : {}),
    });
  }

  /** Bring your own image: give the image with the store's `containerImage`. */
  static custom(options: CustomEngineOptions): IEngine {
    return new CustomEngine({ kind: 'custom', ...options });
  }

  /** The engine described by spec data (from a spec ConfigMap or a KVStore resource). */
  static fromSpec(spec: EngineSpec): IEngine {
    switch (spec.kind) {
      // Through the factory: a KVStore resource may give only { kind: etcd } and rely on the defaults.
      case 'etcd': return Engine.etcd({ ...spec, autoCompactionMode: spec.autoCompactionMode as AutoCompactionMode | undefined });
      case 'custom': return new CustomEngine(spec);
      default: throw new Error(`unknown engine kind ${JSON.stringify((spec as { kind: unknown }).kind)}: expected etcd or custom`);
    }
  }

  /** @internal */
  private constructor() {}
}
