// The CRD-mode example, committed under examples/operator/: `install.k8s.yaml` (the KVStore CRD and a
// reconciler CronJob with its Role, reconciling the KVStore resources of namespace shop) and
// `kvstore.k8s.yaml` (a KVStore resource there). Same namespace on purpose: each store's NetworkPolicy
// admits the reconciler from its own namespace. Both run the default reconciler image of this library version. Regenerate with `npm run examples`; a test checks the bytes.
import { App, Chart, YamlOutputType } from 'cdk8s';
import { KVStoreOperator, KVStoreResource } from '../lib';

const NAMESPACE = 'shop';

export function operatorApp(outdir = 'examples/operator'): App {
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  const install = new Chart(app, 'install', { namespace: NAMESPACE, disableResourceNameHashes: true });
  new KVStoreOperator(install, 'operator');
  const store = new Chart(app, 'kvstore', { namespace: NAMESPACE, disableResourceNameHashes: true });
  new KVStoreResource(store, 'orders', {
    metadata: { name: 'orders' },
    spec: { size: 3, storageSize: '10Gi', backup: { schedule: '0 * * * *', keep: 24} },
  });
  return app;
}

if (require.main === module) {
  operatorApp().synth();
}
