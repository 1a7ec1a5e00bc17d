// The example app `cdk8s synth` renders: a 3-member etcd store with separate data and WAL volumes.
import { App, Chart, YamlOutputType } from 'cdk8s';
import { Engine, KVStore } from '../lib';

export function exampleApp(): App {
  // outdir: cdk8s synth's --output (CDK8S_OUTDIR), else dist/.
  const app = new App({ yamlOutputType: YamlOutputType.FILE_PER_CHART });
  const chart = new Chart(app, 'example', { namespace: 'kvstore-example', disableResourceNameHashes: true });
  new KVStore(chart, 'cache', {
    size: 3,
    storageSize: '10Gi',
    engine: Engine.etcd(),
    volumeClaimTemplates: [
      { name: 'data', storage: '10Gi' },
      { name: 'wal', storage: '2Gi' },
    ],
  });
  return app;
}

if (require.main === module) {
  exampleApp().synth();
}
