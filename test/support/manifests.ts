// Test support: synthesize charts and check every object against the upstream Kubernetes schemas
// (kubernetes-models 4.5.1 carries the Kubernetes 1.33 OpenAPI schemas; @kubernetes-models/cert-manager
// 4.4.4 cert-manager's CRD schemas, @kubernetes-models/prometheus-operator 4.4.4 the Prometheus Operator's).
import { App, Chart, Testing } from 'cdk8s';
import * as core from 'kubernetes-models/v1';
import * as apps from 'kubernetes-models/apps/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as batch from 'kubernetes-models/batch/v1';
import * as rbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as coordination from 'kubernetes-models/coordination.k8s.io/v1';
import * as apiextensions from 'kubernetes-models/apiextensions.k8s.io/v1';
import * as certManager from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import * as monitoring from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Construct } from 'constructs';
import { StoreDefinition } from '../../lib/constructs/store-definition';
import { RenderOptions, renderStoreObjects } from '../../lib/constructs/store-objects';
import type { StoreDocument } from '../../lib/model/document';

export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string>; readonly annotations?: Record<string, string> };
  readonly spec?: any;
  readonly [key: string]: any;
}

const MODELS: Record<string, Record<string, any>> = {
  'v1': core,
  'apps/v1': apps,
  'policy/v1': policy,
  'networking.k8s.io/v1': networking,
  'batch/v1': batch,
  'rbac.authorization.k8s.io/v1': rbac,
  'coordination.k8s.io/v1': coordination,
  'apiextensions.k8s.io/v1': apiextensions,
  'cert-manager.io/v1': certManager,
  'monitoring.coreos.com/v1': monitoring,
};

/** Throws unless `obj` validates against the upstream schema of its apiVersion and kind. */
export function validateAgainstSchema(obj: Manifest): void {
  const Model = MODELS[obj.apiVersion]?.[obj.kind];
  if (!Model) throw new Error(`no upstream schema for ${obj.apiVersion} ${obj.kind}`);
  try {
    new Model(obj).validate();
  } catch (e) {
    throw new Error(`${obj.kind} ${obj.metadata?.name} does not validate: ${(e as Error).message}`);
  }
}

/** A chart to put stores in; pass a namespace to get namespaced names. */
export function testChart(namespace?: string): Chart {
  return new Chart(Testing.app(), 'test', { namespace, disableResourceNameHashes: true });
}

/** Synthesizes a chart and validates every object: every test that synthesizes goes through here. */
export function synth(chart: Chart): Manifest[] {
  const objects = Testing.synth(chart) as Manifest[];
  objects.forEach(validateAgainstSchema);
  return objects;
}

export function find(objects: Manifest[], kind: string, name?: string): Manifest {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` named ${name}` : ''}, found ${found.length}`);
  return found[0];
}

/** The first container of a StatefulSet's pod template. */
export function container(objects: Manifest[]): any {
  return find(objects, 'StatefulSet').spec.template.spec.containers[0];
}

/** Renders an app to one YAML string (all charts). */
export function appYaml(app: App): string {
  return app.synthYaml();
}

/** Renders a store document into `chart` the way the reconciler does (its objects under a scope named after the store). */
export function renderDocument(chart: Chart, document: StoreDocument, options: RenderOptions = {}): Chart {
  renderStoreObjects(new Construct(chart, document.spec.name), StoreDefinition.fromDocument(document), options);
  return chart;
}
