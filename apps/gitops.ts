// The GitOps example: the reconciler bundle for a 3-member etcd store, committed under examples/gitops/.
// Regenerate with `npm run examples`; a test checks the committed bytes are what this app synthesizes.
// The reconciler runs the default image of this library version (DEFAULT_RECONCILER_IMAGE). Each store
// has mutual TLS from its own CA: cert-manager must be installed.
import { App, Chart, YamlOutputType } from 'cdk8s';
import { Engine, GitOpsProfile, IEngine, KVStore } from '../lib';

export function gitOpsApp(outdir = 'examples/gitops', engine: IEngine = Engine.etcd()): App {
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  const plain = new Chart(app, 'plain', { namespace: 'kvstore-example', disableResourceNameHashes: true });
  new KVStore(plain, 'cache', { size: 3, storageSize: '10Gi', engine, tls: {}, reconciler: { maintenance: {} } });
  const argo = new Chart(app, 'argocd', { namespace: 'kvstore-argocd', disableResourceNameHashes: true });
  new KVStore(argo, 'cache', { size: 3, storageSize: '10Gi', engine, tls: {}, reconciler: { profile: GitOpsProfile.ARGO_CD, maintenance: {} } });
  const flux = new Chart(app, 'flux', { namespace: 'kvstore-flux', disableResourceNameHashes: true });
  new KVStore(flux, 'cache', { size: 3, storageSize: '10Gi', engine, tls: {}, reconciler: { profile: GitOpsProfile.FLUX, maintenance: {} } });
  return app;
}

if (require.main === module) {
  gitOpsApp().synth();
}
