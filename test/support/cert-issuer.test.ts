// The cert-manager stand-in: a per-store CA chain issued from cert-manager.io/v1 manifests, checked with
// the openssl CLI (verify, x509 -text) against what the manifests ask for, renewal, and the unrelated CA.
import { execFileSync } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CertIssuer, issueFromManifests, otherCa, parseGoDuration, pemCertificates, TlsSecret, tlsFiles } from './cert-issuer';

const NS = 'kvtest';
const CM = 'cert-manager.io/v1';
const EC = { algorithm: 'ECDSA', size: 256 };

/** A per-store chain as the construct would synthesize it; the leaves come first to exercise ordering. */
function storeManifests(): object[] {
  return [
    {
      apiVersion: CM, kind: 'Certificate', metadata: { name: 'orders-server' },
      spec: {
        secretName: 'orders-server-tls',
        issuerRef: { name: 'orders-ca', kind: 'Issuer' },
        commonName: 'orders',
        dnsNames: ['orders-0.orders-peers.kvtest.svc.cluster.local', '*.orders-peers.kvtest.svc.cluster.local', 'orders.kvtest.svc'],
        ipAddresses: ['127.0.0.1'],
        usages: ['server auth', 'client auth', 'digital signature', 'key encipherment'],
        duration: '720h',
        privateKey: EC,
      },
    },
    {
      apiVersion: CM, kind: 'Certificate', metadata: { name: 'orders-client' },
      spec: {
        secretName: 'orders-client-tls',
        issuerRef: { name: 'orders-ca' },
        commonName: 'root',
        usages: ['client auth', 'digital signature', 'key encipherment'],
        privateKey: { rotationPolicy: 'Never' }, // RSA 2048 by cert-manager's default
      },
    },
    { apiVersion: CM, kind: 'Issuer', metadata: { name: 'orders-ca', namespace: NS }, spec: { ca: { secretName: 'orders-ca' } } },
    {
      apiVersion: CM, kind: 'Certificate', metadata: { name: 'orders-ca', namespace: NS },
      spec: { secretName: 'orders-ca', isCA: true, commonName: 'orders-ca', duration: '87600h', privateKey: EC, issuerRef: { name: 'orders-selfsigned' } },
    },
    { apiVersion: CM, kind: 'Issuer', metadata: { name: 'orders-selfsigned' }, spec: { selfSigned: {} } },
    { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders' }, spec: {} }, // ignored
  ];
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cert-issuer-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function file(content: string): string {
  const path = join(dir, `f${fileCount++}.pem`);
  writeFileSync(path, content);
  return path;
}

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** openssl verify's verdict, or its error. */
function verify(caPem: string, certPem: string, purpose?: string): string {
  try {
    return openssl('verify', ...(purpose ? ['-purpose', purpose] : []), '-CAfile', file(caPem), file(certPem)).trim();
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '') + String((e as { stderr?: string }).stderr ?? '');
  }
}

function text(certPem: string): string {
  return openssl('x509', '-noout', '-text', '-in', file(certPem));
}

function field(certPem: string, opt: string): string {
  return openssl('x509', '-noout', opt, '-in', file(certPem)).trim();
}

/** The lines following an extension's header in `x509 -text`. */
function ext(certText: string, name: string): string | undefined {
  const m = new RegExp(`X509v3 ${name}:( critical)? *\\n\\s+(.*)`).exec(certText);
  return m ? `${m[1] ? 'critical: ' : ''}${m[2].trim()}` : undefined;
}

function byName(secrets: TlsSecret[], name: string): TlsSecret {
  const s = secrets.find((x) => x.metadata.name === name);
  if (!s) throw new Error(`no Secret ${name} among ${secrets.map((x) => x.metadata.name).join(', ')}`);
  return s;
}

describe('a per-store CA chain', () => {
  let secrets: TlsSecret[];
  beforeAll(() => {
    secrets = issueFromManifests(storeManifests(), NS);
  });

  test('the Secrets come in dependency order, as kubernetes.io/tls Secrets with base64 data', () => {
    expect(secrets.map((s) => s.metadata.name)).toEqual(['orders-ca', 'orders-server-tls', 'orders-client-tls']);
    for (const s of secrets) {
      expect(s).toMatchObject({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { namespace: NS } });
      expect(Object.keys(s.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
      expect(Buffer.from(s.data['tls.crt'], 'base64').toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    }
    expect(byName(secrets, 'orders-server-tls').metadata.annotations).toMatchObject({
      'cert-manager.io/certificate-name': 'orders-server',
      'cert-manager.io/issuer-name': 'orders-ca',
      'cert-manager.io/issuer-kind': 'Issuer',
      'cert-manager.io/common-name': 'orders',
      'cert-manager.io/alt-names': 'orders-0.orders-peers.kvtest.svc.cluster.local,*.orders-peers.kvtest.svc.cluster.local,orders.kvtest.svc',
      'cert-manager.io/ip-sans': '127.0.0.1',
    });
  });

  test('the selfSigned CA: isCA, cert sign, self-signed, ca.crt is itself', () => {
    const ca = tlsFiles(byName(secrets, 'orders-ca'));
    expect(ca.ca).toBe(ca.crt);
    expect(pemCertificates(ca.crt)).toHaveLength(1);
    const t = text(ca.crt);
    expect(field(ca.crt, '-subject')).toBe('subject=CN = orders-ca');
    expect(field(ca.crt, '-issuer')).toBe('issuer=CN = orders-ca');
    expect(ext(t, 'Basic Constraints')).toBe('critical: CA:TRUE');
    expect(ext(t, 'Key Usage')).toBe('critical: Digital Signature, Key Encipherment, Certificate Sign');
    expect(ext(t, 'Extended Key Usage')).toBeUndefined();
    expect(ext(t, 'Subject Key Identifier')).toBeDefined();
    expect(ext(t, 'Authority Key Identifier')).toBeUndefined();
    expect(t).toMatch(/ASN1 OID: prime256v1/);
    expect(ca.key).toMatch(/^-----BEGIN EC PRIVATE KEY-----/); // PKCS1 encoding: SEC1 for EC
    expect(verify(ca.ca, ca.crt)).toMatch(/: OK$/);
    const days = (Date.parse(field(ca.crt, '-enddate').slice(9)) - Date.parse(field(ca.crt, '-startdate').slice(10))) / 86_400_000;
    expect(days).toBe(3650);
  });

  test('the server certificate: SANs, usages, CN, not a CA, signed by the store CA', () => {
    const ca = tlsFiles(byName(secrets, 'orders-ca'));
    const server = tlsFiles(byName(secrets, 'orders-server-tls'));
    expect(server.ca).toBe(ca.crt);
    expect(pemCertificates(server.crt)).toHaveLength(1); // the self-signed root is left out of the chain
    const t = text(server.crt);
    expect(field(server.crt, '-subject')).toBe('subject=CN = orders');
    expect(field(server.crt, '-issuer')).toBe('issuer=CN = orders-ca');
    expect(ext(t, 'Subject Alternative Name')).toBe(
      'DNS:orders-0.orders-peers.kvtest.svc.cluster.local, DNS:*.orders-peers.kvtest.svc.cluster.local, DNS:orders.kvtest.svc, IP Address:127.0.0.1');
    expect(ext(t, 'Extended Key Usage')).toBe('TLS Web Server Authentication, TLS Web Client Authentication');
    expect(ext(t, 'Key Usage')).toBe('critical: Digital Signature, Key Encipherment');
    expect(ext(t, 'Basic Constraints')).toBe('critical: CA:FALSE');
    expect(ext(t, 'Subject Key Identifier')).toBeUndefined();
    expect(ext(t, 'Authority Key Identifier')).toBe(ext(text(ca.crt), 'Subject Key Identifier'));
    expect(t).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(verify(server.ca, server.crt, 'sslserver')).toMatch(/: OK$/);
    expect(verify(server.ca, server.crt, 'sslclient')).toMatch(/: OK$/);
    const days = (Date.parse(field(server.crt, '-enddate').slice(9)) - Date.parse(field(server.crt, '-startdate').slice(10))) / 86_400_000;
    expect(days).toBe(30);
    // the key belongs to the certificate
    expect(openssl('pkey', '-pubout', '-in', file(server.key))).toBe(openssl('x509', '-noout', '-pubkey', '-in', file(server.crt)));
  });

  test('the client certificate: client auth only, no SANs, RSA 2048 by default', () => {
    const client = tlsFiles(byName(secrets, 'orders-client-tls'));
    const t = text(client.crt);
    expect(field(client.crt, '-subject')).toBe('subject=CN = root');
    expect(ext(t, 'Extended Key Usage')).toBe('TLS Web Client Authentication');
    expect(ext(t, 'Subject Alternative Name')).toBeUndefined();
    expect(t).toMatch(/Public-Key: \(2048 bit\)/);
    expect(t).toMatch(/Signature Algorithm: ecdsa-with-SHA256/); // signed by the EC CA
    expect(client.key).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(verify(client.ca, client.crt, 'sslclient')).toMatch(/: OK$/);
    expect(verify(client.ca, client.crt, 'sslserver')).toMatch(/unsuitable certificate purpose/);
  });
});

describe('renewal', () => {
  test('a new serial and a new key, verifying against the same CA; rotationPolicy Never keeps the key', () => {
    const issuer = new CertIssuer(storeManifests(), NS);
    issuer.issueAll();
    const before = tlsFiles(issuer.secret('orders-server-tls')!);
    const statusBefore = issuer.status('orders-server');
    const after = tlsFiles(issuer.renew('orders-server'));
    expect(field(after.crt, '-serial')).not.toBe(field(before.crt, '-serial'));
    expect(issuer.status('orders-server')).toMatchObject({ revision: 2 });
    expect(issuer.status('orders-server').serial).not.toBe(statusBefore.serial);
    expect(after.key).not.toBe(before.key);
    expect(after.ca).toBe(before.ca);
    expect(verify(after.ca, after.crt)).toMatch(/: OK$/);
    expect(ext(text(after.crt), 'Subject Alternative Name')).toBe(ext(text(before.crt), 'Subject Alternative Name'));
    // the Secret is replaced in place
    expect(tlsFiles(issuer.secret('orders-server-tls')!).crt).toBe(after.crt);
    expect(issuer.secrets.map((s) => s.metadata.name)).toEqual(['orders-ca', 'orders-server-tls', 'orders-client-tls']);

    const clientBefore = tlsFiles(issuer.secret('orders-client-tls')!);
    const clientAfter = tlsFiles(issuer.renew('orders-client'));
    expect(clientAfter.key).toBe(clientBefore.key);
    expect(field(clientAfter.crt, '-serial')).not.toBe(field(clientBefore.crt, '-serial'));
    expect(tlsFiles(issuer.renew('orders-server', { rotateKey: false })).key).toBe(after.key);
  });

  test('the renewal time is 2/3 through by default; the clock can be set', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const issuer = new CertIssuer(storeManifests(), NS, { now: () => now });
    issuer.issueAll();
    expect(issuer.status('orders-server')).toEqual(expect.objectContaining({
      notBefore: now,
      notAfter: new Date('2030-01-31T00:00:00Z'),
      renewalTime: new Date('2030-01-21T00:00:00Z'),
    }));
    expect(field(tlsFiles(issuer.secret('orders-server-tls')!).crt, '-startdate')).toBe('notBefore=Jan  1 00:00:00 2030 GMT');
  });
});

describe('other issuers and inputs', () => {
  test('a ClusterIssuer reads its CA Secret from the cluster resource namespace', () => {
    const secrets = issueFromManifests([
      { apiVersion: CM, kind: 'ClusterIssuer', metadata: { name: 'selfsigned' }, spec: { selfSigned: {} } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'root', namespace: 'cert-manager' }, spec: { isCA: true, commonName: 'root', secretName: 'root-ca', privateKey: EC, issuerRef: { name: 'selfsigned', kind: 'ClusterIssuer' } } },
      { apiVersion: CM, kind: 'ClusterIssuer', metadata: { name: 'root' }, spec: { ca: { secretName: 'root-ca' } } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'leaf' }, spec: { dnsNames: ['a.example'], secretName: 'leaf', privateKey: { algorithm: 'Ed25519', encoding: 'PKCS8' }, issuerRef: { name: 'root', kind: 'ClusterIssuer' } } },
    ], NS);
    expect(secrets.map((s) => `${s.metadata.namespace}/${s.metadata.name}`)).toEqual(['cert-manager/root-ca', `${NS}/leaf`]);
    const leaf = tlsFiles(secrets[1]);
    expect(verify(leaf.ca, leaf.crt)).toMatch(/: OK$/);
    expect(leaf.key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    // no subject: the SANs are critical
    const t = text(leaf.crt);
    expect(ext(t, 'Subject Alternative Name')).toBe('critical: DNS:a.example');
  });

  test('an intermediate CA: tls.crt carries the intermediate, ca.crt the root', () => {
    const secrets = issueFromManifests([
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'ss' }, spec: { selfSigned: {} } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'root' }, spec: { isCA: true, commonName: 'root', secretName: 'root', privateKey: { algorithm: 'ECDSA', size: 384 }, issuerRef: { name: 'ss' } } },
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'root' }, spec: { ca: { secretName: 'root' } } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'int' }, spec: { isCA: true, commonName: 'int', secretName: 'int', privateKey: EC, issuerRef: { name: 'root' } } },
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'int' }, spec: { ca: { secretName: 'int' } } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'leaf' }, spec: { commonName: 'leaf', secretName: 'leaf', privateKey: EC, issuerRef: { name: 'int' } } },
    ], NS);
    const root = tlsFiles(byName(secrets, 'root'));
    const int = tlsFiles(byName(secrets, 'int'));
    const leaf = tlsFiles(byName(secrets, 'leaf'));
    expect(int.ca).toBe(root.crt);
    expect(text(int.crt)).toMatch(/Signature Algorithm: ecdsa-with-SHA384/);
    expect(leaf.ca).toBe(root.crt);
    expect(pemCertificates(leaf.crt)).toEqual([...pemCertificates(leaf.crt).slice(0, 1), int.crt]);
    expect(openssl('verify', '-CAfile', file(leaf.ca), '-untrusted', file(int.crt), file(pemCertificates(leaf.crt)[0])).trim()).toMatch(/: OK$/);
  });

  test('a CA key pair given as an existing Secret; one without its key is refused', () => {
    const ca = byName(issueFromManifests(storeManifests(), NS), 'orders-ca');
    const leafManifests = [
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'byo' }, spec: { ca: { secretName: 'orders-ca' } } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'x' }, spec: { commonName: 'x', secretName: 'x', privateKey: EC, issuerRef: { name: 'byo' } } },
    ];
    const [x] = issueFromManifests([ca, ...leafManifests], NS);
    expect(tlsFiles(x).ca).toBe(tlsFiles(ca).crt);
    expect(verify(tlsFiles(ca).crt, tlsFiles(x).crt)).toMatch(/: OK$/);
    const noKey = { ...ca, data: { ...ca.data, 'tls.key': '' } };
    expect(() => issueFromManifests([noKey, ...leafManifests], NS)).toThrow(/CA Secret kvtest\/orders-ca has no tls.crt or tls.key/);
  });

  test('what cannot be issued fails with the reasons', () => {
    expect(() => issueFromManifests([
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'a' }, spec: { commonName: 'a', secretName: 'a', issuerRef: { name: 'missing' } } },
    ], NS)).toThrow(/kvtest\/a: Issuer kvtest\/missing not found/);
    expect(() => issueFromManifests([
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'ca' }, spec: { ca: { secretName: 'nowhere' } } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'a' }, spec: { commonName: 'a', secretName: 'a', issuerRef: { name: 'ca' } } },
    ], NS)).toThrow(/needs Secret kvtest\/nowhere, which nothing writes/);
    expect(() => issueFromManifests([
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'ss' }, spec: { selfSigned: {} } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'leaf' }, spec: { commonName: 'leaf', secretName: 'leaf', privateKey: EC, issuerRef: { name: 'ss' } } },
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'ca' }, spec: { ca: { secretName: 'leaf' } } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'b' }, spec: { commonName: 'b', secretName: 'b', issuerRef: { name: 'ca' } } },
    ], NS)).toThrow(/CA Secret kvtest\/leaf: certificate is not a CA/);
    expect(() => issueFromManifests([
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'acme' }, spec: { acme: {} } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'a' }, spec: { commonName: 'a', secretName: 'a', issuerRef: { name: 'acme' } } },
    ], NS)).toThrow(/not simulated \(acme\)/);
    expect(() => issueFromManifests([
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'ss' }, spec: { selfSigned: {} } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'a' }, spec: { commonName: 'a', secretName: 'a', duration: '30m', issuerRef: { name: 'ss' } } },
    ], NS)).toThrow(/below cert-manager's minimum of 1h/);
    expect(() => issueFromManifests([
      { apiVersion: CM, kind: 'Issuer', metadata: { name: 'ss' }, spec: { selfSigned: {} } },
      { apiVersion: CM, kind: 'Certificate', metadata: { name: 'a' }, spec: { commonName: 'a', secretName: 'a', usages: ['server'], issuerRef: { name: 'ss' } } },
    ], NS)).toThrow(/unknown usage 'server'/);
  });

  test('Go durations', () => {
    expect(parseGoDuration('2160h')).toBe(2160 * 3_600_000);
    expect(parseGoDuration('1h30m')).toBe(90 * 60_000);
    expect(parseGoDuration('8760h0m0s')).toBe(8760 * 3_600_000);
    expect(parseGoDuration('1.5h')).toBe(90 * 60_000);
    expect(parseGoDuration('90d')).toBeUndefined();
  });
});

describe('otherCa', () => {
  test('a client certificate from an unrelated CA does not verify against the store CA', () => {
    const store = tlsFiles(byName(issueFromManifests(storeManifests(), NS), 'orders-ca'));
    const other = otherCa({ commonName: 'root' });
    expect(verify(other.caCrt, other.crt, 'sslclient')).toMatch(/: OK$/);
    expect(verify(store.crt, other.crt)).toMatch(/unable to get local issuer certificate/);
    expect(field(other.crt, '-subject')).toBe('subject=CN = root');
    expect(ext(text(other.crt), 'Extended Key Usage')).toBe('TLS Web Client Authentication');
    expect(other.secret.data['ca.crt']).toBe(Buffer.from(other.caCrt).toString('base64'));
    const peerLike = otherCa({ dnsNames: ['orders-0.orders-peers.kvtest.svc.cluster.local'], usages: ['server auth', 'client auth'] });
    expect(ext(text(peerLike.crt), 'Subject Alternative Name')).toBe('DNS:orders-0.orders-peers.kvtest.svc.cluster.local');
    expect(ext(text(peerLike.crt), 'Key Usage')).toBeUndefined();
  });
});
