import { backoffMs, KubeClient, KubeError, retryable, withRetry } from '../../lib/reconciler/client';
import { ApiServer, startApiServer } from '../support/api-server';

const apiError = (code: number, extra: object = {}) => Object.assign(new Error(`HTTP-Code: ${code}`), { code, body: JSON.stringify({ message: `status ${code}` }), ...extra });

describe('retries', () => {
  test('5xx, 429 and network failures are retryable; 4xx are not', () => {
    expect([500, 502, 503, 504, 429].map((c) => retryable(apiError(c)))).toEqual([true, true, true, true, true]);
    expect([400, 403, 404, 409, 422].map((c) => retryable(apiError(c)))).toEqual([false, false, false, false, false]);
    expect(retryable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(retryable(new Error('request timeout'))).toBe(true);
  });

  test('backoff doubles from the base and is capped; Retry-After wins (capped too)', () => {
    const o = { baseDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, o))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffMs(1, o, 0.5)).toBe(500);
    expect(backoffMs(1, o, 30)).toBe(1000);
  });

  test('retries a 503 then succeeds, sleeping the backoff in between', async () => {
    const sleeps: number[] = [];
    let calls = 0;
    const result = await withRetry('apply', 'StatefulSet/orders', async () => {
      calls++;
      if (calls < 3) throw apiError(503);
      return 'ok';
    }, { baseDelayMs: 10, sleep: async (ms) => { sleeps.push(ms); } });
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(sleeps).toEqual([10, 20]);
  });

  test('honours Retry-After on 429', async () => {
    const sleeps: number[] = [];
    let calls = 0;
    await withRetry('list', 'Service', async () => {
      if (calls++ === 0) throw apiError(429, { headers: { 'retry-after': '2' } });
      return 1;
    }, { sleep: async (ms) => { sleeps.push(ms); } });
    expect(sleeps).toEqual([2000]);
  });

  test('gives up after the attempts, naming the object and the reason', async () => {
    const attempt = withRetry('apply', { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders', namespace: 'shop' }, async () => {
      throw apiError(503);
    }, { attempts: 3, sleep: async () => undefined });
    await expect(attempt).rejects.toThrow(KubeError);
    await expect(attempt).rejects.toThrow('apply StatefulSet/orders failed (HTTP 503): status 503 (gave up after 3 attempts)');
  });

  test('does not retry a 422 and reports the API message', async () => {
    let calls = 0;
    await expect(withRetry('apply', 'StatefulSet/orders', async () => {
      calls++;
      throw apiError(422);
    }, { sleep: async () => undefined })).rejects.toThrow(/failed \(HTTP 422\): status 422$/);
    expect(calls).toBe(1);
  });
});

describe('request deadlines (against the API double)', () => {
  let server: ApiServer;
  beforeEach(async () => {
    server = await startApiServer();
  });
  afterEach(async () => {
    await server.stop();
  });

  const ref = { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'shop', name: 'x' };
  const hits = () => server.requests.filter((r) => r.path === '/api/v1/namespaces/shop/configmaps/x').length;

  test('a request the API server does not answer in time is aborted and retried', async () => {
    server.failNext({ method: 'GET', pathPattern: /\/configmaps\/x$/, delayMs: 3000 });
    const client = new KubeClient(server.kubeConfig(), { baseDelayMs: 5, maxDelayMs: 20, requestTimeoutMs: 300 });
    const started = Date.now();
    expect(await client.read(ref)).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(2500);
    expect(hits()).toBe(2);
  });

  test('one that never answers in time gives up after the attempts, naming the object', async () => {
    server.failNext({ method: 'GET', pathPattern: /\/configmaps\/x$/, delayMs: 2000, count: 3 });
    const client = new KubeClient(server.kubeConfig(), { attempts: 3, baseDelayMs: 5, maxDelayMs: 20, requestTimeoutMs: 200 });
    await expect(client.read(ref)).rejects.toThrow(/read ConfigMap\/x failed: .*aborted.* \(gave up after 3 attempts\)/);
  });
});
