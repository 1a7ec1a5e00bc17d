// One store resolved from its input: the spec validated with its engine's rules, its names, cluster
// token and the document the reconciler re-renders it from. Plain data, no construct: the KVStore
// construct and the reconciler each build one and render it with renderStoreObjects().
import { Engine } from '../engines/engine';
import type { EngineContext, IEngine } from '../engines/types';
import { canonicalJson, specHash, StoreDocument, STORE_DOCUMENT_API_VERSION } from '../model/document';
import { SpecError } from '../model/issues';
import { COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL } from '../model/metadata';
import { backupCronJobName, clusterToken, selectorLabels, StoreNames, storeNames } from '../model/names';
import { normalizeSpec } from '../model/normalize';
import type { KVStoreSpec, KVStoreSpecInput } from '../model/spec';

/** CronJob names are limited to 52 characters (the Jobs get an 11-character suffix). */
const MAX_CRONJOB_NAME = 52;

/** Where a store lives: its namespace (when the chart has one) and what its cluster token derives from. */
export interface StorePlacement {
  readonly namespace?: string;
  /** Unique per store and stable across synths: for the construct, namespace and construct path. */
  readonly tokenSeed: string;
}

export class StoreDefinition {
  /** The store a document describes, exactly as the construct that wrote it resolved it (validated again). */
  static fromDocument(document: StoreDocument): StoreDefinition {
    const engine = Engine.fromSpec(document.spec.engine);
    const { spec, warnings } = StoreDefinition.resolve(document.spec, engine);
    return new StoreDefinition(spec, warnings, engine, document.namespace || undefined, document.clusterToken, document.reconciledBy, document.operatorNamespace);
  }

  /** A store from user input (construct props or a KVStore resource's spec). */
  static fromInput(input: KVStoreSpecInput, engine: IEngine, placement: StorePlacement): StoreDefinition {
    const { spec, warnings } = StoreDefinition.resolve(input, engine);
    return new StoreDefinition(spec, warnings, engine, placement.namespace, clusterToken(spec.name, placement.tokenSeed));
  }

  /** Validates an input spec with the engine's rules too: the one entry for construct and reconciler. */
  static resolve(input: KVStoreSpecInput, engine: IEngine): { spec: KVStoreSpec; warnings: string[] } {
    const spec = normalizeSpec(input, engine.defaults);
    const report = engine.validate(spec);
    if (spec.tls && engine.metricsPort === undefined) {
      report.issues.push({ field: 'tls', value: spec.tls, allowed: `left out with the ${engine.spec.kind} engine`, reason: 'it declares no TLS support' });
    }
    if (!engine.snapshots) {
      for (const field of ['backup', 'restore'] as const) {
        if (spec[field]) report.issues.push({ field, value: spec[field], allowed: `left out with the ${engine.spec.kind} engine`, reason: 'it has no snapshot support' });
      }
    }
    if (spec.backup && backupCronJobName(storeNames(spec.name)).length > MAX_CRONJOB_NAME) {
      report.issues.push({ field: 'name', value: spec.name, allowed: `at most ${MAX_CRONJOB_NAME - '-backup'.length} characters with backup`, reason: `the CronJob <name>-backup must fit ${MAX_CRONJOB_NAME}` });
    }
    if (report.issues.length > 0) throw new SpecError(spec.name, report.issues);
    return { spec, warnings: report.warnings };
  }

  readonly names: StoreNames;
  /** The document the reconciler re-renders this store from. */
  readonly document: StoreDocument;
  readonly specHash: string;
  /** The client Service's DNS name (fully qualified when the namespace is known). */
  readonly clientHost: string;
  /** Labels selecting the store's pods: immutable once the StatefulSet exists. */
  readonly selectorLabels: Record<string, string>;
  /** Labels on every object and pod of the store. */
  readonly labels: Record<string, string>;

  private constructor(
    readonly spec: KVStoreSpec,
    readonly warnings: readonly string[],
    readonly engine: IEngine,
    readonly namespace: string | undefined,
    readonly clusterToken: string,
    /** `operator` when the CRD-mode reconciler reconciles this store. */
    readonly reconciledBy?: 'operator',
    /** With `reconciledBy`: the operator's namespace, when it is not the store's. */
    readonly operatorNamespace?: string,
  ) {
    this.names = storeNames(spec.name);
    this.document = {
      apiVersion: STORE_DOCUMENT_API_VERSION, kind: 'StoreDocument', namespace: namespace ?? '', clusterToken, spec,
      ...(reconciledBy ? { reconciledBy } : {}), ...(reconciledBy && operatorNamespace ? { operatorNamespace } : {}),
    };
    this.specHash = specHash(spec);
    this.clientHost = namespace ? `${this.names.clientService}.${namespace}.svc.${spec.clusterDomain}` : this.names.clientService;
    this.selectorLabels = selectorLabels(spec.name);
    this.labels = { ...spec.labels, ...this.selectorLabels, [MANAGED_BY_LABEL]: MANAGED_BY, [COMPONENT_LABEL]: engine.name };
  }

  /** `host:port` of the client Service. */
  get clientEndpoint(): string {
    return `${this.clientHost}:${this.engine.clientPort}`;
  }

  /** The document as the spec ConfigMap carries it. */
  get documentJson(): string {
    return canonicalJson(this.document);
  }

  /** What the engine is told to render this store. */
  engineContext(initialClusterState: 'new' | 'existing', extra: Pick<EngineContext, 'tlsPhase' | 'trustBundle'> = {}): EngineContext {
    return {
      spec: this.spec, names: this.names, clusterToken: this.clusterToken, initialClusterState,
      ...(this.namespace ? { namespace: this.namespace } : {}),
      ...(extra.tlsPhase ? { tlsPhase: extra.tlsPhase } : {}),
      ...(extra.trustBundle ? { trustBundle: true } : {}),
    };
  }

  /** Metadata of one of the store's objects: its labels and the user's annotations. */
  metadata(name: string, annotations: Record<string, string> = {}): { name: string; labels: Record<string, string>; annotations?: Record<string, string> } {
    const all = { ...this.spec.annotations, ...annotations };
    return { name, labels: this.labels, ...(Object.keys(all).length ? { annotations: all } : {}) };
  }
}
