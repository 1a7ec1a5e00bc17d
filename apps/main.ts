// The example app `cdk8s synth` renders: a 3-member etcd store with separate data and WAL volumes,
// mutual TLS from its own CA (cert-manager issues the certificates: install it before applying) and
// monitoring for the Prometheus Operator (its CRDs must be installed too).
import { App, Chart, YamlOutputType } from 'cdk8s';
import { Engine, IEngine, KVStore } from '../lib';

/** `engine`: the tests run the same app at the installed etcd's version. */
export function exampleApp(engine: IEngine = Engine.etcd()): App {
  // outdir: cdk8s synth's --output (CDK8S_OUTDIR), else dist/.
  const app = new App({ yamlOutputType: YamlOutputType.FILE_PER_CHART });
  const chart = new Chart(app, 'example', { namespace: 'kvstore-example', disableResourceNameHashes: true });
  new KVStore(chart, 'cache', {
    size: 3,
    storageSize: '10Gi',
    engine,
    volumeClaimTemplates: [
      { name: 'data', storage: '10Gi' },
      { name: 'wal', storage: '2Gi' },
    ],
    tls: {},
    // A PodMonitor, the store's alerts and a Grafana dashboard (needs the Prometheus Operator's CRDs).
    metrics: { dashboard: true },
  });
  return app;
}

if (require.main === module) {
  exampleApp().synth();
}
