// Library-cost child (B, the floor): cdk8s and cdk8s-plus-28 loaded, the example app's objects as plain ApiObjects.
// argv[2]: JSON file of { chart: objects[] } taken from one synthesis of the example app; writes to $CDK8S_OUTDIR.
import { readFileSync } from 'fs';
import { performance } from 'perf_hooks';
import { ApiObject, App, Chart, YamlOutputType } from 'cdk8s';
import 'cdk8s-plus-28';
import { reconcilerOnlyLoaded } from './loaded-modules';

const charts = JSON.parse(readFileSync(process.argv[2], 'utf8')) as Record<string, any[]>;
const app = new App({ yamlOutputType: YamlOutputType.FILE_PER_CHART });
for (const [name, objects] of Object.entries(charts)) {
  const chart = new Chart(app, name, { disableResourceNameHashes: true });
  objects.forEach((obj, i) => new ApiObject(chart, `o${i}`, obj));
}
app.synth();
process.stdout.write(JSON.stringify({ ms: performance.now(), reconcilerOnly: reconcilerOnlyLoaded() }) + '\n');
