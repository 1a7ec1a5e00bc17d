import { Chart, Testing } from 'cdk8s';
import { DEFAULT_RECONCILER_IMAGE, KVStoreOperator } from '../../lib';
import { find, Manifest, synth, testChart } from '../support/manifests';

const IMAGE = 'registry.example.com/kvstore-reconciler:1.0.0';

describe('KVStoreOperator (CRD mode)', () => {
  test('the CRD, a CronJob with concurrencyPolicy Forbid and namespaced RBAC by default', () => {
    const chart = testChart('kvstores');
    new KVStoreOperator(chart, 'operator', { image: IMAGE });
    const objects = synth(chart);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'CustomResourceDefinition/kvstores.kvstore.cdk8s-kvstore.io',
      'ServiceAccount/kvstore-reconciler',
      'Role/kvstore-reconciler',
      'RoleBinding/kvstore-reconciler',
      'CronJob/kvstore-reconciler',
    ]);
    const cron = find(objects, 'CronJob').spec;
    expect(cron.schedule).toBe('*/5 * * * *');
    expect(cron.concurrencyPolicy).toBe('Forbid');
    expect(cron.jobTemplate.spec.template.spec.containers[0].args).toEqual(['--crd', '--namespace', '$(POD_NAMESPACE)', '--prune-image', IMAGE]);
    expect(cron.jobTemplate.spec.template.spec.serviceAccountName).toBe('kvstore-reconciler');
    // Its pods are the operator: KVStore resources' NetworkPolicies admit them by these labels.
    expect(cron.jobTemplate.spec.template.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'kvstore-reconciler', 'app.kubernetes.io/component': 'operator' });
  });

  test('image defaults to the reconciler image of this library version', () => {
    const chart = testChart('kvstores');
    new KVStoreOperator(chart, 'operator');
    expect(find(synth(chart), 'CronJob').spec.jobTemplate.spec.template.spec.containers[0].image).toBe(DEFAULT_RECONCILER_IMAGE);
  });

  test('schedule prop', () => {
    const chart = testChart('kvstores');
    new KVStoreOperator(chart, 'operator', { image: IMAGE, schedule: '0 * * * *' });
    expect(find(synth(chart), 'CronJob').spec.schedule).toBe('0 * * * *');
  });

  test('namespaces: the rules in a ClusterRole, bound only in each listed namespace; no cluster-wide grant', () => {
    const chart = testChart('kvstores');
    new KVStoreOperator(chart, 'operator', { image: IMAGE, namespaces: ['shop', 'billing'], installCrd: false });
    const objects = synth(chart);
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace ?? '-'}`)).toEqual([
      'ServiceAccount/kvstores', 'ClusterRole/-', 'RoleBinding/shop', 'RoleBinding/billing', 'CronJob/kvstores',
    ]);
    expect(objects.some((o) => o.kind === 'ClusterRoleBinding')).toBe(false);
    for (const binding of objects.filter((o) => o.kind === 'RoleBinding')) {
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kvstore-reconciler' });
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'kvstore-reconciler', namespace: 'kvstores' }]);
    }
    expect(find(objects, 'CronJob').spec.jobTemplate.spec.template.spec.containers[0].args).toEqual(['--crd', '--namespace', 'shop,billing', '--prune-image', IMAGE]);
  });

  test('namespaceSelector: the rules in a ClusterRole bound nowhere; a binder ClusterRole bound cluster-wide that may bind only that one', () => {
    const chart = testChart('kvstores');
    new KVStoreOperator(chart, 'operator', { image: IMAGE, namespaceSelector: { 'team': 'shop', 'kvstore.example.com/enabled': 'true' }, installCrd: false });
    const objects = synth(chart);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}/${o.metadata.namespace ?? '-'}`)).toEqual([
      'ServiceAccount/kvstore-reconciler/kvstores',
      'ClusterRole/kvstore-reconciler/-',
      'ClusterRole/kvstore-reconciler-binder/-',
      'ClusterRoleBinding/kvstore-reconciler-binder/-',
      'CronJob/kvstore-reconciler/kvstores',
    ]);
    // No RoleBinding is synthesized: the reconciler makes them in the namespaces that match.
    expect(objects.some((o) => o.kind === 'RoleBinding')).toBe(false);
    const clusterBindings = objects.filter((o) => o.kind === 'ClusterRoleBinding');
    expect(clusterBindings.map((b) => b.roleRef)).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kvstore-reconciler-binder' }]);
    expect(clusterBindings[0].subjects).toEqual([{ kind: 'ServiceAccount', name: 'kvstore-reconciler', namespace: 'kvstores' }]);
    const binder = objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'kvstore-reconciler-binder')!;
    expect(binder.rules).toEqual([
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list'] },
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['create', 'get', 'list'] },
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], resourceNames: ['kvstore-reconciler'], verbs: ['delete'] },
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], resourceNames: ['kvstore-reconciler'], verbs: ['bind'] },
    ]);
    // The store rules are the same as with namespaces.
    const storeRole = objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'kvstore-reconciler')!;
    const listed = testChart('kvstores');
    new KVStoreOperator(listed, 'operator', { image: IMAGE, namespaces: ['shop'], installCrd: false });
    expect(storeRole.rules).toEqual(find(synth(listed), 'ClusterRole').rules);
    // The selector on the command line, keys sorted; the operator's namespace from the pod.
    const pod = find(objects, 'CronJob').spec.jobTemplate.spec.template.spec;
    expect(pod.containers[0].args).toEqual(['--crd', '--namespace-selector', 'kvstore.example.com/enabled=true,team=shop', '--prune-image', IMAGE]);
    expect(pod.containers[0].env).toEqual([{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }]);
  });

  test('cluster-scoped objects carry no namespace in a namespaced chart; namespaced ones carry the chart\'s or their own', () => {
    const chart = testChart('kvstores');
    new KVStoreOperator(chart, 'operator', { image: IMAGE, namespaces: ['kvstores'] });
    const namespaces = Object.fromEntries(synth(chart).map((o) => [o.kind, o.metadata.namespace ?? null]));
    expect(namespaces).toEqual({
      CustomResourceDefinition: null, ServiceAccount: 'kvstores', ClusterRole: null, RoleBinding: 'kvstores', CronJob: 'kvstores',
    });
  });

  test('RBAC: KVStore read and status update, store kinds without wildcards, PVCs without deletecollection', () => {
    const chart = testChart('kvstores');
    new KVStoreOperator(chart, 'operator', { image: IMAGE });
    const rules = find(synth(chart), 'Role').rules as Array<Record<string, string[]>>;
    expect(rules).toContainEqual({ apiGroups: ['kvstore.cdk8s-kvstore.io'], resources: ['kvstores'], verbs: ['get', 'list'] });
    expect(rules).toContainEqual({ apiGroups: ['kvstore.cdk8s-kvstore.io'], resources: ['kvstores/status'], verbs: ['get', 'update'] });
    for (const rule of rules) for (const values of Object.values(rule)) expect(values).not.toContain('*');
    expect(rules.find((r) => r.resources.includes('persistentvolumeclaims'))!.verbs).toEqual(['create', 'delete', 'get', 'list', 'patch']);
    // Secrets: get by name only (a TLS store's client certificate), never list or watch.
    expect(rules.filter((r) => r.resources.includes('secrets'))).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]);
    // An Event for each step, on the KVStore resource: create only.
    expect(rules.filter((r) => r.resources.includes('events'))).toEqual([{ apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] }]);
  });

  test('without maintenance: one CronJob; pods may be read, never deleted or created', () => {
    const chart = testChart('kvstores');
    new KVStoreOperator(chart, 'operator', { image: IMAGE, installCrd: false });
    const objects = synth(chart);
    expect(objects.filter((o) => o.kind === 'CronJob').map((o) => o.metadata.name)).toEqual(['kvstore-reconciler']);
    const rules = find(objects, 'Role').rules as Array<Record<string, string[]>>;
    expect(rules.filter((r) => r.resources.includes('pods'))).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }]);
  });

  describe('maintenance', () => {
    const cronJob = (objects: Manifest[], name: string) => objects.find((o) => o.kind === 'CronJob' && o.metadata.name === name)!;
    const podRules = (objects: Manifest[], kind = 'Role') => (find(objects, kind).rules as Array<Record<string, string[]>>).filter((r) => r.resources.includes('pods'));

    test('a second CronJob kvstore-maintenance, hourly at :23, Forbid, running --crd --maintain in the reconcile CronJob\'s scope, image, ServiceAccount, labels and pod security; pods may be deleted, not created', () => {
      // GIVEN
      const chart = testChart('kvstores');
      // WHEN
      new KVStoreOperator(chart, 'operator', { image: IMAGE, maintenance: {}, installCrd: false });
      // THEN
      const objects = synth(chart);
      expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
        'ServiceAccount/kvstore-reconciler', 'Role/kvstore-reconciler', 'RoleBinding/kvstore-reconciler', 'CronJob/kvstore-reconciler', 'CronJob/kvstore-maintenance',
      ]);
      const reconcile = cronJob(objects, 'kvstore-reconciler').spec;
      const maintenance = cronJob(objects, 'kvstore-maintenance').spec;
      expect(maintenance.schedule).toBe('23 * * * *');
      expect(maintenance.concurrencyPolicy).toBe('Forbid');
      // A failed run is the next schedule's to retry.
      expect(maintenance.jobTemplate.spec.backoffLimit).toBe(0);
      const pod = maintenance.jobTemplate.spec.template;
      expect(pod.spec.containers[0].args).toEqual(['--crd', '--namespace', '$(POD_NAMESPACE)', '--prune-image', IMAGE, '--maintain']);
      // Everything else about the pod is the reconcile CronJob's: the operator's labels (the stores'
      // NetworkPolicies admit it to etcd by them), image, ServiceAccount, security, POD_NAMESPACE.
      const { args: _maintainArgs, ...maintainContainer } = pod.spec.containers[0];
      const { args: _reconcileArgs, ...reconcileContainer } = reconcile.jobTemplate.spec.template.spec.containers[0];
      expect(maintainContainer).toEqual(reconcileContainer);
      expect({ ...pod.spec, containers: [] }).toEqual({ ...reconcile.jobTemplate.spec.template.spec, containers: [] });
      expect(pod.metadata).toEqual(reconcile.jobTemplate.spec.template.metadata);
      expect(pod.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'kvstore-reconciler', 'app.kubernetes.io/component': 'operator' });
      expect(pod.spec.serviceAccountName).toBe('kvstore-reconciler');
      // A lost member's pod is deleted; no pod is created without recoverQuorumLoss.
      expect(podRules(objects)).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['delete', 'get', 'list'] }]);
      // Its claims are deleted by the rules the operator holds anyway.
      expect((find(objects, 'Role').rules as Array<Record<string, string[]>>).find((r) => r.resources.includes('persistentvolumeclaims'))!.verbs).toContain('delete');
    });

    test('recoverQuorumLoss: --recover-quorum-loss, and pods may be created (the survivor\'s one-off pod)', () => {
      const chart = testChart('kvstores');
      new KVStoreOperator(chart, 'operator', { image: IMAGE, maintenance: { recoverQuorumLoss: true }, installCrd: false });
      const objects = synth(chart);
      expect(cronJob(objects, 'kvstore-maintenance').spec.jobTemplate.spec.template.spec.containers[0].args)
        .toEqual(['--crd', '--namespace', '$(POD_NAMESPACE)', '--prune-image', IMAGE, '--maintain', '--recover-quorum-loss']);
      expect(podRules(objects)).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['create', 'delete', 'get', 'list'] }]);
    });

    test('schedule prop, and the scope of namespaces or a namespaceSelector (whose ClusterRole gets the pod rules)', () => {
      const listed = testChart('kvstores');
      new KVStoreOperator(listed, 'operator', { image: IMAGE, namespaces: ['shop', 'billing'], maintenance: { schedule: '@daily' }, installCrd: false });
      const listedObjects = synth(listed);
      const spec = cronJob(listedObjects, 'kvstore-maintenance').spec;
      expect(spec.schedule).toBe('@daily');
      expect(spec.jobTemplate.spec.template.spec.containers[0].args).toEqual(['--crd', '--namespace', 'shop,billing', '--prune-image', IMAGE, '--maintain']);
      expect(podRules(listedObjects, 'ClusterRole')).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['delete', 'get', 'list'] }]);

      const selected = testChart('kvstores');
      new KVStoreOperator(selected, 'operator', { image: IMAGE, namespaceSelector: { team: 'shop' }, maintenance: {}, installCrd: false });
      const selectedObjects = synth(selected);
      expect(cronJob(selectedObjects, 'kvstore-maintenance').spec.jobTemplate.spec.template.spec.containers[0].args).toEqual(['--crd', '--namespace-selector', 'team=shop', '--prune-image', IMAGE, '--maintain']);
      const storeRole = selectedObjects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'kvstore-reconciler')!;
      expect((storeRole.rules as Array<Record<string, string[]>>).filter((r) => r.resources.includes('pods'))).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['delete', 'get', 'list'] }]);
    });

    test('fails on a maintenance schedule that is not a cron schedule, naming the field and the value', () => {
      expect(() => new KVStoreOperator(testChart('x'), 'operator', { image: IMAGE, maintenance: { schedule: 'every hour' } }))
        .toThrow(/^KVStoreOperator 'operator': maintenance\.schedule must be a cron schedule of five fields such as "23 \* \* \* \*", or a macro such as @hourly, got "every hour"$/);
      expect(() => new KVStoreOperator(testChart('x'), 'operator', { image: IMAGE, maintenance: { schedule: '0 * * *' } })).toThrow(/maintenance\.schedule .*, got "0 \* \* \*"/);
    });
  });

  test('fails on a schedule that is not a cron expression', () => {
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { image: IMAGE, schedule: 'hourly' }))
      .toThrow(/KVStoreOperator 'operator': schedule must be a cron expression of five fields, got "hourly"/);
  });

  test('fails on namespaces without a chart namespace, and on a bad or repeated namespace name', () => {
    expect(() => new KVStoreOperator(new Chart(Testing.app(), 'c'), 'operator', { image: IMAGE, namespaces: ['shop'] }))
      .toThrow(/namespaces needs the chart to have a namespace \(the reconciler's own\), got none/);
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaces: ['Shop'] })).toThrow(/namespaces must be a non-empty list of distinct namespace names \(DNS-1123 labels\), got "Shop"/);
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaces: ['a', 'a'] })).toThrow(/got \["a","a"\]/);
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaces: [] })).toThrow(/got \[\]/);
  });

  test('fails on namespaces and namespaceSelector together', () => {
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaces: ['shop'], namespaceSelector: { team: 'shop' } }))
      .toThrow(/KVStoreOperator 'operator': namespaces and namespaceSelector cannot be used together: list the namespaces, or select them by label, or give neither/);
  });

  test('fails on namespaceSelector without a chart namespace, empty, or with an invalid label key or value', () => {
    expect(() => new KVStoreOperator(new Chart(Testing.app(), 'c'), 'operator', { namespaceSelector: { team: 'shop' } }))
      .toThrow(/KVStoreOperator 'operator': namespaceSelector needs the chart to have a namespace \(the reconciler's own\), got none/);
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaceSelector: {} }))
      .toThrow(/KVStoreOperator 'operator': namespaceSelector must be a non-empty map of label keys .* to label values .*, got \{\}/);
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaceSelector: { 'team': 'shop', 'bad key': 'x' } })).toThrow(/namespaceSelector must be .*, got \{"bad key":"x"\}/);
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaceSelector: { team: 'not a value' } })).toThrow(/got \{"team":"not a value"\}/);
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaceSelector: { team: 'x'.repeat(64) } })).toThrow(/namespaceSelector must be/);
    expect(() => new KVStoreOperator(testChart('x'), 'operator', { namespaceSelector: { [`${'a'.repeat(254)}/team`]: 'x' } })).toThrow(/namespaceSelector must be/);
  });
});
