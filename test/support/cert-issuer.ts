// Test support: stands in for cert-manager's issuers. It reads cert-manager.io/v1 Issuer, ClusterIssuer
// and Certificate manifests (plain objects, e.g. a synthesized chart's output) and writes the Secrets
// cert-manager would write for them, with real keys and certificates made by the `openssl` CLI in a
// temporary directory, so tests can mount them into real etcd members.
//
// What it simulates (cert-manager v1.18+ behaviour, as its docs and source describe it):
// - issuers: `spec.selfSigned: {}` (a Certificate is signed by its own key: issuer DN = subject, and
//   ca.crt is the certificate itself) and `spec.ca.secretName` (signed by the key pair in that Secret:
//   its tls.crt chain plus its ca.crt; a Secret whose certificate is not a CA, or whose key does not
//   match, leaves the issuer not ready: here an error). A ClusterIssuer's CA Secret is read from the
//   cluster resource namespace (`cert-manager` unless given). Issuer refs default to kind Issuer;
//   an Issuer is looked up in the Certificate's namespace;
// - dependency order: a Certificate is issued once its issuer is ready, i.e. a CA issuer once its Secret
//   exists (written by an earlier Certificate, or given as an existing Secret among the manifests);
//   Certificates that can never be issued (missing issuer or Secret, a cycle) fail with the reasons,
//   where cert-manager would wait forever;
// - the Certificate spec: secretName, issuerRef {name, kind, group}, isCA, commonName, subject
//   (countries, provinces, localities, streetAddresses, postalCodes, organizations, organizationalUnits,
//   serialNumber), dnsNames, ipAddresses, uris, emailAddresses, usages (cert-manager's names; none
//   given = 'digital signature' + 'key encipherment'; isCA adds 'cert sign'), duration (Go duration,
//   default 2160h, at least 1h), renewBefore / renewBeforePercentage (for the renewal time only),
//   privateKey {algorithm RSA (default, size 2048) | ECDSA (256 default, 384, 521) | Ed25519,
//   encoding PKCS1 (default: RSA/EC "traditional" PEM) | PKCS8, rotationPolicy Always (default since
//   v1.18) | Never}, secretTemplate {labels, annotations};
// - the certificate as Go's x509 writes it for cert-manager: a random 128-bit serial, notBefore = now,
//   basicConstraints critical (CA:TRUE without pathlen, or CA:FALSE), keyUsage critical when any,
//   extendedKeyUsage in the order given, SANs (critical when the subject is empty), a subject key id on
//   CA certificates only, an authority key id when the issuer has a key id and is not the subject;
//   signed SHA-256 (RSA, P-256), SHA-384 (P-384), SHA-512 (P-521) or Ed25519 by the signer's key;
// - the Secret: type kubernetes.io/tls, base64 `data` tls.crt (the leaf, then the issuer chain without
//   a self-signed root), tls.key, ca.crt (the chain's root if self-signed, else its highest certificate),
//   label controller.cert-manager.io/fao=true and the annotations cert-manager.io/certificate-name,
//   issuer-name, issuer-kind, issuer-group, common-name, alt-names, ip-sans, uri-sans;
// - renewal (`renew`): the same issuer as it is now signs a new certificate with a new serial; the key
//   is new unless rotationPolicy is Never (or the caller says otherwise). Renewing a CA Certificate
//   does not re-issue the Certificates it signed, as in cert-manager.
// Not simulated: the API server, controllers and their timing (the caller decides when to issue and
// renew), CertificateRequests, ACME/Vault/Venafi and external issuers, issuer CRL/OCSP/AIA fields,
// literalSubject, nameConstraints, otherNames, additionalOutputFormats, keystores, revisionHistoryLimit,
// webhook validation beyond the checks above, and NotAfter truncation to the CA's validity (cert-manager
// does not truncate either). Every file lives in a temporary directory removed before returning.
import { execFileSync } from 'child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, X509Certificate } from 'crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { isIP } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import type { Manifest } from './manifests';

const CM = 'cert-manager.io/v1';
const CM_GROUP = 'cert-manager.io';
const HOUR = 3_600_000;
const DEFAULT_DURATION = 2160 * HOUR;

/** A Secret as cert-manager writes it for a Certificate. */
export interface TlsSecret extends Manifest {
  readonly apiVersion: 'v1';
  readonly kind: 'Secret';
  readonly type: 'kubernetes.io/tls';
  readonly metadata: { readonly name: string; readonly namespace: string; readonly labels: Record<string, string>; readonly annotations: Record<string, string> };
  readonly data: { readonly 'tls.crt': string; readonly 'tls.key': string; readonly 'ca.crt': string };
}

/** What cert-manager records in a Certificate's status after an issuance. */
export interface CertificateStatus {
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly renewalTime: Date;
  /** 1 after the first issuance, +1 per renewal. */
  readonly revision: number;
}

export interface CertIssuerOptions {
  /** Where a ClusterIssuer's CA Secret lives (cert-manager's --cluster-resource-namespace). Default 'cert-manager'. */
  readonly clusterResourceNamespace?: string;
  /** The clock for notBefore and notAfter. Default: the real time at each issuance. */
  readonly now?: () => Date;
}

export interface RenewOptions {
  /** The Certificate's namespace; default the issuer's namespace. */
  readonly namespace?: string;
  /** New key (true) or the Secret's current key (false). Default: per spec.privateKey.rotationPolicy (Always unless Never). */
  readonly rotateKey?: boolean;
}

/** The PEM contents of a TLS Secret. */
export interface TlsFiles {
  readonly crt: string;
  readonly key: string;
  readonly ca: string;
}

/** Decodes a Secret's tls.crt, tls.key and ca.crt. */
export function tlsFiles(secret: Manifest): TlsFiles {
  const get = (k: string) => {
    if (secret.data?.[k] !== undefined) return Buffer.from(String(secret.data[k]), 'base64').toString('utf8');
    if (secret.stringData?.[k] !== undefined) return String(secret.stringData[k]);
    return '';
  };
  return { crt: get('tls.crt'), key: get('tls.key'), ca: get('ca.crt') };
}

/** Splits a PEM bundle into its certificates. */
export function pemCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((p) => p.endsWith('\n') ? p : `${p}\n`) ?? [];
}

/** Issues every Certificate among the manifests, in dependency order: what cert-manager would write. */
export function issueFromManifests(manifests: readonly object[], namespace: string, options: CertIssuerOptions = {}): TlsSecret[] {
  return new CertIssuer(manifests, namespace, options).issueAll();
}

/**
 * cert-manager's issuers over a fixed set of manifests, keeping the Secrets it wrote so that
 * Certificates can be renewed later.
 */
export class CertIssuer {
  private readonly certificates = new Map<string, Manifest>();
  private readonly issuers = new Map<string, Manifest>();
  private readonly clusterIssuers = new Map<string, Manifest>();
  private readonly store = new Map<string, TlsSecret | Manifest>();
  private readonly statuses = new Map<string, CertificateStatus>();
  private readonly issued: TlsSecret[] = [];
  private readonly clusterNamespace: string;

  /**
   * @param manifests cert-manager.io/v1 Issuers, ClusterIssuers and Certificates; v1 Secrets are taken as
   *   existing Secrets (a CA key pair for a ca issuer); anything else is ignored
   * @param namespace the namespace of namespaced manifests that name none
   */
  constructor(manifests: readonly object[], private readonly namespace: string, private readonly options: CertIssuerOptions = {}) {
    this.clusterNamespace = options.clusterResourceNamespace ?? 'cert-manager';
    for (const raw of manifests) {
      const m = raw as Manifest;
      if (m.apiVersion === 'v1' && m.kind === 'Secret') {
        this.store.set(key(m.metadata.namespace ?? namespace, m.metadata.name), m);
        continue;
      }
      if (typeof m.apiVersion !== 'string' || !m.apiVersion.startsWith(`${CM_GROUP}/`)) continue;
      if (!['Issuer', 'ClusterIssuer', 'Certificate'].includes(m.kind)) continue;
      if (m.apiVersion !== CM) throw new Error(`cert-issuer: ${m.kind} ${m.metadata.name}: only ${CM} is simulated, not ${m.apiVersion}`);
      const ns = m.metadata.namespace ?? namespace;
      if (m.kind === 'ClusterIssuer') this.clusterIssuers.set(m.metadata.name, m);
      else if (m.kind === 'Issuer') this.issuers.set(key(ns, m.metadata.name), m);
      else this.certificates.set(key(ns, m.metadata.name), m);
    }
    const bySecret = new Map<string, string>();
    for (const [k, crt] of this.certificates) {
      const s = key(nsOf(k), crt.spec?.secretName);
      if (bySecret.has(s)) throw new Error(`cert-issuer: Certificates ${bySecret.get(s)} and ${k} both write Secret ${s}`);
      bySecret.set(s, k);
    }
  }

  /** Issues every Certificate not issued yet, each once its issuer is ready; returns their Secrets in issuing order. */
  issueAll(): TlsSecret[] {
    const pending = [...this.certificates.keys()].filter((k) => !this.statuses.has(k));
    const out: TlsSecret[] = [];
    while (pending.length > 0) {
      const blocked: string[] = [];
      let progressed = false;
      for (const k of [...pending]) {
        const why = this.notReady(k, pending);
        if (why === undefined) {
          out.push(this.issue(k, undefined));
          pending.splice(pending.indexOf(k), 1);
          progressed = true;
        } else {
          blocked.push(`${k}: ${why}`);
        }
      }
      if (!progressed) throw new Error(`cert-issuer: cannot issue:\n  ${blocked.join('\n  ')}`);
    }
    return out;
  }

  /**
   * Renews an issued Certificate: its issuer as it is now signs a new certificate (new serial, new
   * validity), with a new key unless the rotation policy or `rotateKey` says otherwise.
   */
  renew(certificateName: string, options: RenewOptions = {}): TlsSecret {
    const k = key(options.namespace ?? this.namespace, certificateName);
    if (!this.certificates.has(k)) throw new Error(`cert-issuer: no Certificate ${k}`);
    if (!this.statuses.has(k)) throw new Error(`cert-issuer: Certificate ${k} was never issued: call issueAll() first`);
    const why = this.notReady(k, []);
    if (why !== undefined) throw new Error(`cert-issuer: cannot renew ${k}: ${why}`);
    const crt = this.certificates.get(k)!;
    const rotate = options.rotateKey ?? crt.spec?.privateKey?.rotationPolicy !== 'Never';
    const current = this.store.get(key(nsOf(k), crt.spec.secretName))!;
    return this.issue(k, rotate ? undefined : tlsFiles(current).key);
  }

  /** The Secret named so (written by a Certificate, or given), if any. */
  secret(name: string, namespace: string = this.namespace): TlsSecret | undefined {
    return this.store.get(key(namespace, name)) as TlsSecret | undefined;
  }

  /** Every Secret this issuer wrote, latest version of each, in first-issuing order. */
  get secrets(): TlsSecret[] {
    const seen = new Set<string>();
    return this.issued.map((s) => key(s.metadata.namespace, s.metadata.name)).filter((k) => !seen.has(k) && seen.add(k))
      .map((k) => this.store.get(k) as TlsSecret);
  }

  /** The Certificate's status after its latest issuance. */
  status(certificateName: string, namespace: string = this.namespace): CertificateStatus {
    const s = this.statuses.get(key(namespace, certificateName));
    if (!s) throw new Error(`cert-issuer: Certificate ${key(namespace, certificateName)} was never issued`);
    return s;
  }

  /** Why the Certificate cannot be issued now (undefined when it can). */
  private notReady(k: string, pending: string[]): string | undefined {
    const crt = this.certificates.get(k)!;
    const { issuer, label, ns } = this.issuerOf(k, crt);
    if (!issuer) return `${label} not found`;
    if (issuer.spec?.selfSigned !== undefined) return undefined;
    if (issuer.spec?.ca !== undefined) {
      const secretName = issuer.spec.ca.secretName;
      if (!secretName) return `${label} has no spec.ca.secretName`;
      const sk = key(ns, secretName);
      if (this.store.has(sk)) return undefined;
      const writer = pending.find((p) => key(nsOf(p), this.certificates.get(p)!.spec?.secretName) === sk);
      return writer ? `waits for Secret ${sk} of Certificate ${writer}` : `${label} needs Secret ${sk}, which nothing writes`;
    }
    const types = Object.keys(issuer.spec ?? {}).join(', ') || 'none';
    return `${label} is of a type not simulated (${types}): only selfSigned and ca are`;
  }

  private issuerOf(k: string, crt: Manifest): { issuer?: Manifest; label: string; ns: string } {
    const ref = crt.spec?.issuerRef ?? {};
    const kind = ref.kind ?? 'Issuer';
    const group = ref.group ?? CM_GROUP;
    if (group !== CM_GROUP) return { label: `issuer ${group}/${kind} ${ref.name} (external issuers are not simulated)`, ns: nsOf(k) };
    if (kind === 'ClusterIssuer') return { issuer: this.clusterIssuers.get(ref.name), label: `ClusterIssuer ${ref.name}`, ns: this.clusterNamespace };
    if (kind !== 'Issuer') return { label: `issuerRef kind ${kind}`, ns: nsOf(k) };
    return { issuer: this.issuers.get(key(nsOf(k), ref.name)), label: `Issuer ${key(nsOf(k), ref.name)}`, ns: nsOf(k) };
  }

  private issue(k: string, reuseKey: string | undefined): TlsSecret {
    const crt = this.certificates.get(k)!;
    const ns = nsOf(k);
    const spec = validate(k, crt.spec);
    const { issuer, ns: issuerNs } = this.issuerOf(k, crt);
    const keyPem = reuseKey ?? generateKey(spec.privateKey);
    const now = new Date(Math.floor((this.options.now?.() ?? new Date()).getTime() / 1000) * 1000);
    const notAfter = new Date(now.getTime() + spec.duration);

    let signerChain: string[] = [];
    let signerKey = keyPem;
    if (issuer!.spec.ca !== undefined) {
      const caSecret = this.store.get(key(issuerNs, issuer!.spec.ca.secretName))!;
      const files = tlsFiles(caSecret);
      signerChain = dedupe([...pemCertificates(files.crt), ...pemCertificates(files.ca)]);
      signerKey = files.key;
      const where = `CA Secret ${key(issuerNs, issuer!.spec.ca.secretName)}`;
      if (signerChain.length === 0 || !signerKey) throw new Error(`cert-issuer: ${k}: ${where} has no tls.crt or tls.key`);
      if (!new X509Certificate(signerChain[0]).ca) throw new Error(`cert-issuer: ${k}: ${where}: certificate is not a CA`);
      if (!samePublicKey(signerKey, signerChain[0])) throw new Error(`cert-issuer: ${k}: ${where}: tls.key does not match tls.crt`);
    }

    const certPem = withTempDir((dir) => sign(dir, spec, keyPem, signerChain[0], signerKey, now, notAfter));
    // cert-manager's ParseSingleCertificateChain: leaf up to the highest certificate; a self-signed root
    // is left out of the chain and becomes ca.crt.
    const all = [certPem, ...signerChain];
    const top = all[all.length - 1];
    const topSelfSigned = isSelfSigned(top);
    const chain = topSelfSigned && all.length > 1 ? all.slice(0, -1) : all;
    const leaf = new X509Certificate(certPem);
    const caPem = topSelfSigned || all.length > 1 ? top : '';

    const ref = crt.spec.issuerRef;
    const secret: TlsSecret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: spec.secretName,
        namespace: ns,
        labels: { ...(spec.secretTemplate?.labels ?? {}), 'controller.cert-manager.io/fao': 'true' },
        annotations: {
          ...(spec.secretTemplate?.annotations ?? {}),
          'cert-manager.io/alt-names': spec.dnsNames.join(','),
          'cert-manager.io/certificate-name': crt.metadata.name,
          'cert-manager.io/common-name': spec.commonName ?? '',
          'cert-manager.io/ip-sans': spec.ipAddresses.join(','),
          'cert-manager.io/issuer-group': ref.group ?? '',
          'cert-manager.io/issuer-kind': ref.kind ?? 'Issuer',
          'cert-manager.io/issuer-name': ref.name,
          'cert-manager.io/uri-sans': spec.uris.join(','),
        },
      },
      data: { 'tls.crt': b64(chain.join('')), 'tls.key': b64(keyPem), 'ca.crt': b64(caPem) },
    };
    this.store.set(key(ns, spec.secretName), secret);
    this.issued.push(secret);
    const renewBefore = spec.renewBefore;
    this.statuses.set(k, {
      serial: leaf.serialNumber,
      notBefore: now,
      notAfter,
      renewalTime: new Date(notAfter.getTime() - renewBefore),
      revision: (this.statuses.get(k)?.revision ?? 0) + 1,
    });
    return secret;
  }
}

/** An unrelated CA and a certificate from it, for tests of what must be refused. */
export interface OtherCa {
  /** The unrelated CA's certificate (PEM). */
  readonly caCrt: string;
  /** The leaf certificate (PEM) and its key. */
  readonly crt: string;
  readonly key: string;
  /** The leaf as a TLS Secret (ca.crt = the unrelated CA). */
  readonly secret: TlsSecret;
}

export interface OtherCaOptions {
  /** Default 'intruder'. */
  readonly commonName?: string;
  readonly dnsNames?: string[];
  readonly ipAddresses?: string[];
  /** cert-manager usage names; default 'client auth', 'digital signature', 'key encipherment'. */
  readonly usages?: string[];
  /** Where the Secret would be; defaults 'intruder-tls' in 'default'. */
  readonly secretName?: string;
  readonly namespace?: string;
}

/** Makes a CA nobody trusts (ECDSA P-256, its own selfSigned chain) and a leaf certificate from it. */
export function otherCa(options: OtherCaOptions = {}): OtherCa {
  const ns = options.namespace ?? 'default';
  const secretName = options.secretName ?? 'intruder-tls';
  const ec = { algorithm: 'ECDSA', size: 256 };
  const manifests = [
    { apiVersion: CM, kind: 'Issuer', metadata: { name: 'other-selfsigned' }, spec: { selfSigned: {} } },
    {
      apiVersion: CM, kind: 'Certificate', metadata: { name: 'other-ca' },
      spec: { isCA: true, commonName: 'other-ca', secretName: 'other-ca', privateKey: ec, issuerRef: { name: 'other-selfsigned' } },
    },
    { apiVersion: CM, kind: 'Issuer', metadata: { name: 'other-ca' }, spec: { ca: { secretName: 'other-ca' } } },
    {
      apiVersion: CM, kind: 'Certificate', metadata: { name: 'intruder' },
      spec: {
        secretName,
        commonName: options.commonName ?? 'intruder',
        dnsNames: options.dnsNames,
        ipAddresses: options.ipAddresses,
        usages: options.usages ?? ['client auth', 'digital signature', 'key encipherment'],
        privateKey: ec,
        issuerRef: { name: 'other-ca' },
      },
    },
  ];
  const secrets = issueFromManifests(manifests, ns);
  const leaf = secrets.find((s) => s.metadata.name === secretName)!;
  const files = tlsFiles(leaf);
  return { caCrt: files.ca, crt: files.crt, key: files.key, secret: leaf };
}

// ---- the Certificate spec -------------------------------------------------------------------------

interface PrivateKeySpec {
  readonly algorithm: 'RSA' | 'ECDSA' | 'Ed25519';
  readonly size: number;
  readonly encoding: 'PKCS1' | 'PKCS8';
}

interface Spec {
  readonly secretName: string;
  readonly isCA: boolean;
  readonly commonName?: string;
  readonly subject: Record<string, any>;
  readonly dnsNames: string[];
  readonly ipAddresses: string[];
  readonly uris: string[];
  readonly emailAddresses: string[];
  readonly keyUsage: string[];
  readonly extKeyUsage: string[];
  readonly duration: number;
  readonly renewBefore: number;
  readonly privateKey: PrivateKeySpec;
  readonly secretTemplate?: { labels?: Record<string, string>; annotations?: Record<string, string> };
}

/** cert-manager's usage names → OpenSSL's keyUsage names. */
const KEY_USAGES: Record<string, string> = {
  'signing': 'digitalSignature',
  'digital signature': 'digitalSignature',
  'content commitment': 'nonRepudiation',
  'key encipherment': 'keyEncipherment',
  'key agreement': 'keyAgreement',
  'data encipherment': 'dataEncipherment',
  'cert sign': 'keyCertSign',
  'crl sign': 'cRLSign',
  'encipher only': 'encipherOnly',
  'decipher only': 'decipherOnly',
};
/** cert-manager's usage names → OpenSSL's extendedKeyUsage names. */
const EXT_KEY_USAGES: Record<string, string> = {
  'any': 'anyExtendedKeyUsage',
  'server auth': 'serverAuth',
  'client auth': 'clientAuth',
  'code signing': 'codeSigning',
  'email protection': 'emailProtection',
  's/mime': 'emailProtection',
  'ipsec end system': 'ipsecEndSystem',
  'ipsec tunnel': 'ipsecTunnel',
  'ipsec user': 'ipsecUser',
  'timestamping': 'timeStamping',
  'ocsp signing': 'OCSPSigning',
  'microsoft sgc': 'msSGC',
  'netscape sgc': 'nsSGC',
};
// Go's x509 writes keyUsage bits in this order; OpenSSL sorts them itself, so the order is only for reading.
const KEY_USAGE_ORDER = Object.values(KEY_USAGES).filter((v, i, a) => a.indexOf(v) === i);

function validate(k: string, spec: any): Spec {
  const fail = (msg: string): never => {
    throw new Error(`cert-issuer: Certificate ${k}: ${msg}`);
  };
  if (!spec) fail('no spec');
  if (!spec.secretName) fail('spec.secretName is required');
  if (!spec.issuerRef?.name) fail('spec.issuerRef.name is required');
  const list = (field: string): string[] => {
    const v = spec[field] ?? [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(`spec.${field} must be a list of strings`);
    return v;
  };
  const dnsNames = list('dnsNames');
  const ipAddresses = list('ipAddresses');
  const uris = list('uris');
  const emailAddresses = list('emailAddresses');
  for (const ip of ipAddresses) if (!isIP(ip)) fail(`spec.ipAddresses: ${ip} is not an IP address`);
  if (spec.commonName !== undefined && String(spec.commonName).length > 64) fail('spec.commonName is longer than 64 characters');
  if (!spec.commonName && dnsNames.length + ipAddresses.length + uris.length + emailAddresses.length === 0) {
    fail('at least one of commonName, dnsNames, uris, ipAddresses or emailAddresses must be set');
  }

  const usages: string[] = list('usages').length > 0 ? list('usages') : ['digital signature', 'key encipherment'];
  const keyUsage = new Set<string>(spec.isCA ? ['keyCertSign'] : []);
  const extKeyUsage: string[] = [];
  for (const u of usages) {
    if (KEY_USAGES[u]) keyUsage.add(KEY_USAGES[u]);
    else if (EXT_KEY_USAGES[u]) {
      if (!extKeyUsage.includes(EXT_KEY_USAGES[u])) extKeyUsage.push(EXT_KEY_USAGES[u]);
    } else fail(`unknown usage '${u}'`);
  }

  const duration = spec.duration === undefined ? DEFAULT_DURATION : parseGoDuration(spec.duration) ?? fail(`spec.duration '${spec.duration}' is not a Go duration`);
  if (duration < HOUR) fail(`spec.duration ${spec.duration} is below cert-manager's minimum of 1h`);
  let renewBefore = duration / 3;
  if (spec.renewBefore !== undefined) {
    renewBefore = parseGoDuration(spec.renewBefore) ?? fail(`spec.renewBefore '${spec.renewBefore}' is not a Go duration`);
  } else if (spec.renewBeforePercentage !== undefined) {
    renewBefore = duration * Number(spec.renewBeforePercentage) / 100;
  }
  if (renewBefore >= duration) renewBefore = duration / 3;

  const pk = spec.privateKey ?? {};
  const algorithm = pk.algorithm ?? 'RSA';
  let size: number;
  if (algorithm === 'RSA') {
    size = pk.size ?? 2048;
    if (size < 2048 || size > 8192) fail(`RSA key size ${size} is outside 2048..8192`);
  } else if (algorithm === 'ECDSA') {
    size = pk.size ?? 256;
    if (![256, 384, 521].includes(size)) fail(`ECDSA key size ${size} is not 256, 384 or 521`);
  } else if (algorithm === 'Ed25519') {
    size = 0;
  } else {
    return fail(`spec.privateKey.algorithm '${algorithm}' is not RSA, ECDSA or Ed25519`);
  }
  const encoding = pk.encoding ?? 'PKCS1';
  if (encoding !== 'PKCS1' && encoding !== 'PKCS8') fail(`spec.privateKey.encoding '${encoding}' is not PKCS1 or PKCS8`);
  if (pk.rotationPolicy !== undefined && !['Always', 'Never'].includes(pk.rotationPolicy)) fail(`spec.privateKey.rotationPolicy '${pk.rotationPolicy}' is not Always or Never`);

  return {
    secretName: spec.secretName,
    isCA: spec.isCA === true,
    commonName: spec.commonName || undefined,
    subject: spec.subject ?? {},
    dnsNames,
    ipAddresses,
    uris,
    emailAddresses,
    keyUsage: KEY_USAGE_ORDER.filter((u) => keyUsage.has(u)),
    extKeyUsage,
    duration,
    renewBefore,
    privateKey: { algorithm, size, encoding },
    secretTemplate: spec.secretTemplate,
  };
}

/** A Go duration string ("2160h", "1h30m", "8760h0m0s") in milliseconds; undefined when not one. */
export function parseGoDuration(text: string): number | undefined {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: HOUR };
  if (typeof text !== 'string' || !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, n, , unit] of text.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(n) * units[unit];
  return total;
}

// ---- keys and certificates ------------------------------------------------------------------------

function generateKey(pk: PrivateKeySpec): string {
  if (pk.algorithm === 'Ed25519') {
    return generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
  }
  if (pk.algorithm === 'RSA') {
    return generateKeyPairSync('rsa', {
      modulusLength: pk.size,
      privateKeyEncoding: { type: pk.encoding === 'PKCS8' ? 'pkcs8' : 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
  }
  const curve = { 256: 'P-256', 384: 'P-384', 521: 'P-521' }[pk.size as 256 | 384 | 521];
  return generateKeyPairSync('ec', {
    namedCurve: curve,
    privateKeyEncoding: { type: pk.encoding === 'PKCS8' ? 'pkcs8' : 'sec1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
}

/** The digest Go's x509 signs with for this signer key (none for Ed25519). */
function digestFor(signerKey: string): string | undefined {
  const k = createPrivateKey(signerKey);
  if (k.asymmetricKeyType === 'ed25519') return undefined;
  if (k.asymmetricKeyType === 'ec') {
    const curve = k.asymmetricKeyDetails?.namedCurve;
    return curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : 'sha256';
  }
  return 'sha256';
}

function samePublicKey(keyPem: string, certPem: string): boolean {
  const a = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  const b = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return a.equals(b);
}

function isSelfSigned(certPem: string): boolean {
  const c = new X509Certificate(certPem);
  return c.checkIssued(c) && c.verify(c.publicKey);
}

/** The subject in Go's pkix.Name order, as openssl -subj. */
function subjectArg(spec: Spec): string {
  const s = spec.subject;
  const rdns: [string, string][] = [];
  const add = (type: string, values: unknown) => {
    for (const v of (Array.isArray(values) ? values : values === undefined ? [] : [values])) rdns.push([type, String(v)]);
  };
  add('C', s.countries);
  add('ST', s.provinces);
  add('L', s.localities);
  add('street', s.streetAddresses);
  add('postalCode', s.postalCodes);
  add('O', s.organizations);
  add('OU', s.organizationalUnits);
  add('CN', spec.commonName);
  add('serialNumber', s.serialNumber);
  if (rdns.length === 0) return '/';
  return rdns.map(([t, v]) => `/${t}=${v.replace(/[\\/+]/g, (c) => `\\${c}`)}`).join('');
}

function extensions(spec: Spec, selfSigned: boolean): string {
  const lines = [`basicConstraints = critical, CA:${spec.isCA ? 'TRUE' : 'FALSE'}`];
  if (spec.keyUsage.length > 0) lines.push(`keyUsage = critical, ${spec.keyUsage.join(', ')}`);
  if (spec.extKeyUsage.length > 0) lines.push(`extendedKeyUsage = ${spec.extKeyUsage.join(', ')}`);
  const sans = [
    ...spec.dnsNames.map((v, i) => `DNS.${i} = ${v}`),
    ...spec.ipAddresses.map((v, i) => `IP.${i} = ${v}`),
    ...spec.uris.map((v, i) => `URI.${i} = ${v}`),
    ...spec.emailAddresses.map((v, i) => `email.${i} = ${v}`),
  ];
  const emptySubject = subjectArg(spec) === '/';
  if (sans.length > 0) lines.push(`subjectAltName = ${emptySubject ? 'critical, ' : ''}@sans`);
  lines.push(`subjectKeyIdentifier = ${spec.isCA ? 'hash' : 'none'}`);
  lines.push(`authorityKeyIdentifier = ${selfSigned ? 'none' : 'keyid'}`);
  if (sans.length > 0) lines.push('', '[ sans ]', ...sans);
  return `${lines.join('\n')}\n`;
}

const OPENSSL_CONFIG = `[ ca ]
default_ca = issuer
[ issuer ]
database = ./index.txt
new_certs_dir = .
serial = ./serial
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
default_md = default
[ policy_any ]
commonName = optional
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
`;

/** Signs a new certificate for keyPem: self-signed when caPem is undefined. Returns its PEM. */
function sign(dir: string, spec: Spec, keyPem: string, caPem: string | undefined, signerKey: string, notBefore: Date, notAfter: Date): string {
  writeFileSync(join(dir, 'openssl.cnf'), OPENSSL_CONFIG);
  writeFileSync(join(dir, 'index.txt'), '');
  // Go's serial: random below 2^128 (positive).
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  writeFileSync(join(dir, 'serial'), `${serial.toString('hex')}\n`);
  writeFileSync(join(dir, 'key.pem'), keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'signer.pem'), signerKey, { mode: 0o600 });
  writeFileSync(join(dir, 'ext.cnf'), extensions(spec, caPem === undefined));
  openssl(dir, ['req', '-new', '-config', 'openssl.cnf', '-key', 'key.pem', '-subj', subjectArg(spec), '-out', 'req.csr']);
  const args = ['ca', '-config', 'openssl.cnf', '-batch', '-notext', '-preserveDN', '-in', 'req.csr', '-out', 'cert.pem',
    '-extfile', 'ext.cnf', '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter), '-keyfile', 'signer.pem'];
  const md = digestFor(signerKey);
  if (md) args.push('-md', md);
  if (caPem === undefined) {
    args.push('-selfsign');
  } else {
    writeFileSync(join(dir, 'ca.pem'), caPem);
    args.push('-cert', 'ca.pem');
  }
  openssl(dir, args);
  return pemCertificates(readFileSync(join(dir, 'cert.pem'), 'utf8'))[0];
}

function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, '')}Z`;
}

function openssl(cwd: string, args: string[]): string {
  try {
    return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`cert-issuer: openssl ${args[0]} failed: ${err.stderr?.trim() || err.message}`);
  }
}

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'cert-issuer-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function dedupe(pems: string[]): string[] {
  const seen = new Set<string>();
  return pems.filter((p) => {
    const der = new X509Certificate(p).raw.toString('base64');
    return !seen.has(der) && !!seen.add(der);
  });
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function nsOf(k: string): string {
  return k.slice(0, k.indexOf('/'));
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}
