import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Chart, Testing } from 'cdk8s';
import { gitOpsApp } from '../../apps/gitops';
import { operatorApp } from '../../apps/operator';
import { DEFAULT_RECONCILER_IMAGE, Engine, GitOpsProfile, KVStore, KVStoreProps, PatchOp, TaintEffect } from '../../lib';
import { parseStoreDocument } from '../../lib/model/document';
import { desiredState } from '../../lib/reconciler/desired';
import { find, Manifest, synth, testChart } from '../support/manifests';

/** A TLS Secret's keys, listed so that a Secret without one fails the mount naming it. */
const TLS_ITEMS = ['tls.crt', 'tls.key', 'ca.crt'].map((key) => ({ key, path: key }));

const IMAGE = 'registry.example.com/kvstore-reconciler:1.0.0';

function bundle(props: KVStoreProps = {}, profile?: GitOpsProfile): Manifest[] {
  const chart = testChart('shop');
  new KVStore(chart, 'orders', { ...props, reconciler: { image: IMAGE, profile } });
  return synth(chart);
}

const jobName = (objects: Manifest[]) => find(objects, 'Job').metadata.name;

describe('GitOps mode (reconciler bundle)', () => {
  test('synthesizes the bundle instead of the store objects', () => {
    expect(bundle().map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'ConfigMap/orders-kvstore-spec',
      'ServiceAccount/orders-reconciler',
      'Role/orders-reconciler',
      'RoleBinding/orders-reconciler',
      expect.stringMatching(/^Job\/orders-reconcile-[0-9a-f]{10}$/),
    ]);
  });

  test('the Job\'s deadline fits its longest operation (three passes over every member, 600 s per wait); retries wait for a live run\'s Lease', () => {
    expect(find(bundle({ size: 3 }), 'Job').spec).toMatchObject({ backoffLimit: 4, activeDeadlineSeconds: 13 * 600 });
    expect(find(bundle({ size: 7 }), 'Job').spec.activeDeadlineSeconds).toBe(25 * 600);
  });

  test('maintenance: a CronJob running the reconciler with --maintain on the schedule (hourly by default), one run at a time, with the Job\'s pod', () => {
    const chart = testChart('shop');
    new KVStore(chart, 'orders', { tls: {}, reconciler: { image: IMAGE, maintenance: {} } });
    const objects = synth(chart);
    const cron = objects.find((o) => o.kind === 'CronJob' && o.metadata.name === 'orders-maintenance')!;
    expect(cron.spec).toMatchObject({ schedule: '23 * * * *', concurrencyPolicy: 'Forbid', jobTemplate: { spec: { backoffLimit: 0, activeDeadlineSeconds: 13 * 600 } } });
    const pod = cron.spec.jobTemplate.spec.template;
    const job = find(objects, 'Job').spec.template;
    expect(pod.spec.containers[0].args).toEqual(['--store', '/etc/kvstore/store.json', '--maintain']);
    // The same pod as the reconcile Job's (ServiceAccount, document, client certificate), and the store label its NetworkPolicy admits.
    expect({ ...pod.spec, containers: [{ ...pod.spec.containers[0], args: [] }] }).toEqual({ ...job.spec, containers: [{ ...job.spec.containers[0], args: [] }] });
    expect(pod.metadata.labels['kvstore.cdk8s-kvstore.io/store']).toBe('orders');
    // Without maintenance: no CronJob.
    expect(bundle().filter((o) => o.kind === 'CronJob')).toEqual([]);
  });

  test('maintenance with recoverQuorumLoss: --recover-quorum-loss, and only then may the reconciler create pods (the survivor\'s one-off pod, read and deleted by name)', () => {
    const rules = (maintenance: object) => {
      const chart = testChart('shop');
      new KVStore(chart, 'orders', { reconciler: { image: IMAGE, maintenance } });
      const objects = synth(chart);
      return { rules: find(objects, 'Role').rules as any[], args: objects.find((o) => o.kind === 'CronJob')!.spec.jobTemplate.spec.template.spec.containers[0].args };
    };
    const off = rules({});
    expect(off.rules.filter((r) => r.resources.includes('pods') && r.verbs.includes('create'))).toEqual([]);
    expect(off.args).not.toContain('--recover-quorum-loss');
    const on = rules({ recoverQuorumLoss: true });
    expect(on.args).toEqual(['--store', '/etc/kvstore/store.json', '--maintain', '--recover-quorum-loss']);
    expect(on.rules.filter((r) => r.resources.includes('pods'))).toEqual([
      { apiGroups: [''], resources: ['pods'], resourceNames: ['orders-0', 'orders-1', 'orders-2', 'orders-3', 'orders-4', 'orders-5', 'orders-6'], verbs: ['delete', 'get'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['create'] },
      { apiGroups: [''], resources: ['pods'], resourceNames: ['orders-recover-0', 'orders-recover-1', 'orders-recover-2', 'orders-recover-3', 'orders-recover-4', 'orders-recover-5', 'orders-recover-6'], verbs: ['delete', 'get'] },
    ]);
  });

  test('maintenance: a schedule that is not cron, or a custom engine, is refused naming the store and the field', () => {
    const make = (props: KVStoreProps) => () => new KVStore(testChart('shop'), 'orders', props);
    expect(make({ reconciler: { image: IMAGE, maintenance: { schedule: 'hourly' } } })).toThrow(/orders.*reconciler\.maintenance\.schedule must be a cron schedule of five fields.*got "hourly"/s);
    expect(make({ engine: Engine.custom({ clientPort: 6379 }), containerImage: 'redis:7', reconciler: { image: IMAGE, maintenance: {} } })).toThrow(/orders.*reconciler\.maintenance must be left out for a custom engine/s);
  });

  test('the Job is named by a hash of the spec: same spec same name, changed spec or image a new name', () => {
    expect(jobName(bundle())).toBe(jobName(bundle()));
    expect(jobName(bundle({ size: 5 }))).not.toBe(jobName(bundle()));
    const chart = testChart('shop');
    new KVStore(chart, 'orders', { reconciler: { image: 'registry.example.com/kvstore-reconciler:1.0.1' } });
    expect(jobName(synth(chart))).not.toBe(jobName(bundle()));
  });

  test('a long store name still gives a Job name that fits a 63-character label', () => {
    const name = 'a'.repeat(52);
    const chart = testChart('shop');
    new KVStore(chart, 'x', { name, reconciler: { image: IMAGE } });
    const job = jobName(synth(chart));
    expect(job.length).toBeLessThanOrEqual(63);
    expect(job).toMatch(new RegExp(`^${name}-[0-9a-f]{10}$`));
  });

  test('the Job has no TTL, mounts the store document and runs as a client of the store', () => {
    const job = find(bundle(), 'Job').spec;
    expect(job.ttlSecondsAfterFinished).toBeUndefined();
    const pod = job.template.spec;
    expect(pod.serviceAccountName).toBe('orders-reconciler');
    expect(pod.containers[0].image).toBe(IMAGE);
    expect(pod.containers[0].args).toEqual(['--store', '/etc/kvstore/store.json']);
    expect(pod.volumes).toEqual([{ name: 'store', configMap: { name: 'orders-kvstore-spec' } }]);
    expect(job.template.metadata.labels['kvstore.cdk8s-kvstore.io/store']).toBe('orders');
    expect(pod.containers[0].securityContext).toEqual({
      runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
  });

  test('without an image: the default reconciler image, also for the backup prune container', () => {
    const chart = testChart('shop');
    const store = new KVStore(chart, 'orders', { reconciler: {}, backup: {} });
    expect(find(synth(chart), 'Job').spec.template.spec.containers[0].image).toBe(DEFAULT_RECONCILER_IMAGE);
    expect(store.spec.backup!.pruneImage).toBe(DEFAULT_RECONCILER_IMAGE);
    const pinned = new KVStore(testChart('shop'), 'orders', { reconciler: { image: IMAGE }, backup: {} });
    expect(pinned.spec.backup!.pruneImage).toBe(IMAGE);
  });

  test('with TLS: the Job mounts the client certificate; the certificates are the GitOps tool\'s, so its Role has no cert-manager rule', () => {
    const objects = bundle({ tls: {} });
    const pod = find(objects, 'Job').spec.template.spec;
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'client-tls', mountPath: '/etc/kvstore/client-tls', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'client-tls', secret: { secretName: 'orders-client-tls', defaultMode: 0o440, items: TLS_ITEMS } });
    expect(pod.securityContext.fsGroup).toBe(65532);
    expect(find(objects, 'Role').rules.some((r: any) => r.apiGroups[0] === 'cert-manager.io')).toBe(false);
    // The chart holds them beside the bundle; the reconciler's desired state does not.
    expect(objects.filter((o) => o.apiVersion === 'cert-manager.io/v1').map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Issuer/orders-selfsigned', 'Certificate/orders-ca', 'Issuer/orders-ca', 'Certificate/orders-member-tls', 'Certificate/orders-client-tls',
    ]);
    const document = parseStoreDocument(find(objects, 'ConfigMap').data['store.json']);
    expect(desiredState(document).objects.some((o) => o.apiVersion === 'cert-manager.io/v1')).toBe(false);
    expect(desiredState({ ...document, reconciledBy: 'operator' }).objects.filter((o) => o.apiVersion === 'cert-manager.io/v1')).toHaveLength(5);
  });

  test('force is passed to the reconciler', () => {
    const chart = testChart('shop');
    new KVStore(chart, 'orders', { reconciler: { image: IMAGE, force: true } });
    const store = chart.node.findChild('orders') as KVStore;
    expect(find(synth(chart), 'Job').spec.template.spec.containers[0].args).toEqual(['--store', '/etc/kvstore/store.json', '--force', '--force-spec', store.specHash]);
  });

  test('the Role grants only named verbs on named resources: no wildcards', () => {
    const rules = find(bundle(), 'Role').rules as Array<Record<string, string[]>>;
    for (const rule of rules) {
      for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames']) expect(rule[field] ?? []).not.toContain('*');
      // Reading, changing or deleting an existing object is limited to the store's own names.
      if (rule.verbs.some((v) => ['get', 'patch', 'delete', 'update'].includes(v))) expect(rule.resourceNames?.length).toBeGreaterThan(0);
    }
    expect(rules).toContainEqual({ apiGroups: ['apps'], resources: ['statefulsets'], resourceNames: ['orders'], verbs: ['delete', 'get', 'patch'] });
    expect(rules).toContainEqual({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['orders-reconciler'], verbs: ['get', 'update'] });
    // An Event for each step: create only (Event names are generated: nothing to limit a patch by).
    expect(rules.filter((r) => r.resources.includes('events'))).toEqual([{ apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] }]);
    // PVCs only by name: this store's claims (grow; delete a removed member's before its ordinal rejoins).
    const claimRules = rules.filter((r) => r.resources.includes('persistentvolumeclaims'));
    expect(claimRules).toEqual([
      { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['list'] },
      { apiGroups: [''], resources: ['persistentvolumeclaims'], resourceNames: Array.from({ length: 7 }, (_, i) => `data-orders-${i}`), verbs: ['delete', 'get', 'patch'] },
    ]);
    expect(rules.filter((r) => r.resources.includes('pods'))).toEqual([{ apiGroups: [''], resources: ['pods'], resourceNames: Array.from({ length: 7 }, (_, i) => `orders-${i}`), verbs: ['delete', 'get'] }]);
  });

  test('the RoleBinding binds the Role to the ServiceAccount', () => {
    expect(find(bundle(), 'RoleBinding')).toMatchObject({
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'orders-reconciler' },
      subjects: [{ kind: 'ServiceAccount', name: 'orders-reconciler' }],
    });
  });

  test('the reconciler re-synthesizes exactly what the construct synthesizes without it, escape hatches included', () => {
    const props: KVStoreProps = {
      size: 5,
      storageSize: '20Gi',
      tolerations: [{ key: 'dedicated', value: 'kv', effect: TaintEffect.NO_SCHEDULE }],
      imagePullSecrets: ['regcred'],
      priorityClassName: 'kv-critical',
      patches: [{ kind: 'StatefulSet', ops: [{ op: PatchOp.ADD, path: '/spec/template/spec/hostAliases', value: [{ ip: '10.0.0.1', hostnames: ['db'] }] }] }],
    };
    const objects = bundle(props);
    // The reconciler Job itself pulls with the store's credentials and tolerates its taints.
    expect(find(objects, 'Job').spec.template.spec).toMatchObject({ imagePullSecrets: [{ name: 'regcred' }], tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'kv', effect: 'NoSchedule' }] });
    const document = parseStoreDocument(find(objects, 'ConfigMap').data['store.json']);
    const direct = testChart('shop');
    new KVStore(direct, 'orders', props);
    expect(find(synth(direct), 'StatefulSet').spec.template.spec.hostAliases).toEqual([{ ip: '10.0.0.1', hostnames: ['db'] }]);
    const strip = (o: any) => {
      const { labels = {}, annotations = {}, ...metadata } = o.metadata;
      const { ['applyset.kubernetes.io/part-of']: _p, ...restLabels } = labels;
      const { ['kvstore.cdk8s-kvstore.io/applied-hash']: _h, ...restAnnotations } = annotations;
      return { ...o, metadata: { ...metadata, labels: restLabels, ...(Object.keys(restAnnotations).length ? { annotations: restAnnotations } : {}) } };
    };
    expect(desiredState(document).objects.slice(1).map(strip)).toEqual(synth(direct));
  });

  test('who owns what: the GitOps tool applies the bundle, the reconciler the store objects; no object is both', () => {
    const objects = bundle();
    const document = parseStoreDocument(find(objects, 'ConfigMap').data['store.json']);
    const reconcilerOwned = desiredState(document).objects.map((o) => `${o.kind}/${o.metadata.name}`);
    const gitOpsOwned = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(reconcilerOwned.filter((o) => gitOpsOwned.includes(o))).toEqual([]);
    expect(reconcilerOwned).toContain('StatefulSet/orders');
    expect(gitOpsOwned.some((o) => o.startsWith('StatefulSet/'))).toBe(false);
  });

  test('Argo CD profile: the Job is a Sync hook deleted before the next one', () => {
    const objects = bundle({}, GitOpsProfile.ARGO_CD);
    expect(find(objects, 'Job').metadata.annotations).toEqual({ 'argocd.argoproj.io/hook': 'Sync', 'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation', 'argocd.argoproj.io/sync-wave': '1' });
    expect(objects.filter((o) => o.metadata.annotations)).toHaveLength(1);
  });

  test('Flux profile: the force annotation is on the Job only', () => {
    const objects = bundle({}, GitOpsProfile.FLUX);
    expect(find(objects, 'Job').metadata.annotations).toEqual({ 'kustomize.toolkit.fluxcd.io/force': 'enabled' });
    expect(objects.filter((o) => o.metadata.annotations?.['kustomize.toolkit.fluxcd.io/force'])).toHaveLength(1);
  });

  test('fails without a chart namespace', () => {
    expect(() => new KVStore(new Chart(Testing.app(), 'c'), 'orders', { reconciler: { image: IMAGE } }))
      .toThrow(/KVStore 'orders': reconciler needs the chart to have a namespace, got none/);
  });

  test('the committed GitOps example is byte-identical to a fresh synthesis', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'kvstore-gitops-'));
    try {
      gitOpsApp(outdir).synth();
      const files = readdirSync(outdir).sort();
      expect(files).toEqual(readdirSync(join(__dirname, '..', '..', 'examples', 'gitops')).sort());
      for (const f of files) {
        expect({ f, text: readFileSync(join(outdir, f), 'utf8') }).toEqual({ f, text: readFileSync(join(__dirname, '..', '..', 'examples', 'gitops', f), 'utf8') });
      }
      expect(readFileSync(join(outdir, 'plain.k8s.yaml'), 'utf8')).toContain(DEFAULT_RECONCILER_IMAGE);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });

  test('the committed CRD-mode example (examples/operator/) is byte-identical to a fresh synthesis', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'kvstore-operator-'));
    try {
      operatorApp(outdir).synth();
      const committed = join(__dirname, '..', '..', 'examples', 'operator');
      const files = readdirSync(outdir).sort();
      expect(files).toEqual(readdirSync(committed).sort());
      for (const f of files) {
        expect({ f, text: readFileSync(join(outdir, f), 'utf8') }).toEqual({ f, text: readFileSync(join(committed, f), 'utf8') });
      }
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
