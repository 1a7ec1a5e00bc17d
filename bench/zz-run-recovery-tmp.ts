import { recoveryBench, recoveryReport } from './recovery';
(async () => {
  const started = Date.now();
  const r = await recoveryBench();
  if (typeof r === 'string') { console.log('unavailable', r); return; }
  console.log(JSON.stringify(r, null, 1));
  console.log(recoveryReport(r).join('\n'));
  console.log('total', Date.now() - started);
})().catch((e) => { console.error(e); process.exit(1); });
