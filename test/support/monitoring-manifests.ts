// Test support: a store and its monitoring objects synthesized in one chart, every object validated
// against its upstream schema (the Prometheus Operator's CRDs through @kubernetes-models/prometheus-operator
// 4.4.4, everything else as manifests.ts does).
import * as monitoring from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Chart, Testing } from 'cdk8s';
import { Construct } from 'constructs';
import { Engine, KVStore, KVStoreProps } from '../../lib';
import { specInputFromProps } from '../../lib/constructs/kv-store';
import { MetricsOptions, MonitoringContext, renderMonitoring } from '../../lib/constructs/monitoring';
import { StoreDefinition } from '../../lib/constructs/store-definition';
import { Manifest, testChart, validateAgainstSchema } from './manifests';

const MONITORING_KINDS: Record<string, any> = monitoring;

/** Synthesizes a chart, validating the monitoring.coreos.com objects too. */
export function synthMonitored(chart: Chart): Manifest[] {
  const objects = Testing.synth(chart) as Manifest[];
  for (const obj of objects) {
    if (obj.apiVersion !== 'monitoring.coreos.com/v1') {
      validateAgainstSchema(obj);
      continue;
    }
    const Model = MONITORING_KINDS[obj.kind];
    if (!Model) throw new Error(`no upstream schema for ${obj.apiVersion} ${obj.kind}`);
    try {
      new Model(obj).validate();
    } catch (e) {
      throw new Error(`${obj.kind} ${obj.metadata.name} does not validate: ${(e as Error).message}`);
    }
  }
  return objects;
}

/** The definition KVStore builds from these props (same spec, same placement rules); null: no namespace. */
export function storeDefinition(name: string, props: KVStoreProps = {}, namespace: string | null = 'shop'): StoreDefinition {
  const engine = props.engine ?? Engine.etcd();
  return StoreDefinition.fromInput(specInputFromProps(name, engine, props), engine, { namespace: namespace ?? undefined, tokenSeed: `${namespace ?? ''}/test/${name}` });
}

export interface MonitoredStore {
  readonly store: StoreDefinition;
  readonly objects: Manifest[];
}

/** A store (KVStore) and its monitoring (renderMonitoring, under `<name>-monitoring`) in one chart. */
export function monitoredStore(name: string, props: KVStoreProps = {}, metrics: MetricsOptions = {}, context: MonitoringContext = {}, namespace = 'shop'): MonitoredStore {
  const chart = testChart(namespace);
  new KVStore(chart, name, props);
  const store = storeDefinition(name, props, namespace);
  renderMonitoring(new Construct(chart, `${name}-monitoring`), store, metrics, context);
  return { store, objects: synthMonitored(chart) };
}

/** The first object of a kind (and name), or a failure naming what is there. */
export function findObject(objects: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}
