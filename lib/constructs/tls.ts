// A TLS store's certificates as cert-manager objects: the store's own CA (a self-signed Issuer, a CA
// Certificate and an Issuer that signs with it) unless the spec names an issuer, the members'
// certificate (server and peer) and the library's own clients' certificate. cert-manager writes
// them into kubernetes.io/tls Secrets (tls.crt, tls.key, ca.crt), which the pods mount.
import type { ICertificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate';
import type { IIssuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer';
import { Construct } from 'constructs';
import { clientCertName, podFqdn, tlsSecrets } from '../model/names';
import { kubeObject } from './kube';
import type { StoreDefinition } from './store-definition';

const CERT_MANAGER = { apiVersion: 'cert-manager.io/v1' } as const;
/** ECDSA P-256 keys, a fresh one at every renewal. */
const PRIVATE_KEY = { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' } as const;
/** Leaves live 90 days and are renewed 30 days ahead; the store's own CA lives 10 years. */
const LEAF = { duration: '2160h', renewBefore: '720h' } as const;
const CA_DURATION = '87600h';
/** The etcd user the library's own clients are (the reconciler, backup and snapshot Jobs). */
export const LIBRARY_CLIENT_USER = 'root';

/**
 * Every name a member is reached by: each ordinal the engine allows by its DNS name (explicitly, as
 * etcd 3.4 checks a peer's certificate by looking its DNS names up) and by wildcard, the headless
 * Service's own name (which members require of a peer certificate), the client Service's short,
 * namespaced and fully qualified names, and loopback.
 */
export function memberDnsNames(store: StoreDefinition, namespace: string, maxSize: number): string[] {
  const { names, spec } = store;
  const peers = `${names.headlessService}.${namespace}.svc.${spec.clusterDomain}`;
  const client = names.clientService;
  return [
    ...Array.from({ length: maxSize }, (_, i) => podFqdn(names, i, namespace, spec.clusterDomain)),
    `*.${peers}`,
    peers,
    client, `${client}.${namespace}`, `${client}.${namespace}.svc`, `${client}.${namespace}.svc.${spec.clusterDomain}`,
    'localhost',
  ];
}

/** Renders the cert-manager objects of a TLS store whose Secrets cert-manager issues. */
export function renderCertificates(scope: Construct, store: StoreDefinition, maxSize: number): void {
  const { names, spec } = store;
  const namespace = store.namespace!;
  let issuerRef: { name: string; kind: string; group: string };
  if (spec.tls!.issuer) {
    issuerRef = { ...spec.tls!.issuer, group: 'cert-manager.io' };
  } else {
    kubeObject<IIssuer>(scope, 'SelfSignedIssuer', { ...CERT_MANAGER, kind: 'Issuer' }, {
      metadata: store.metadata(names.selfSignedIssuer),
      spec: { selfSigned: {} },
    });
    kubeObject<ICertificate>(scope, 'CaCertificate', { ...CERT_MANAGER, kind: 'Certificate' }, {
      metadata: store.metadata(names.ca),
      spec: {
        isCA: true,
        commonName: `${spec.name}.${namespace} kvstore CA`,
        secretName: names.ca,
        duration: CA_DURATION,
        // The CA keeps its key when renewed, so leaves signed before and after verify against either
        // (etcd does not reload its trusted CA).
        privateKey: { ...PRIVATE_KEY, rotationPolicy: 'Never' },
        issuerRef: { name: names.selfSignedIssuer, kind: 'Issuer', group: 'cert-manager.io' },
      },
    });
    kubeObject<IIssuer>(scope, 'CaIssuer', { ...CERT_MANAGER, kind: 'Issuer' }, {
      metadata: store.metadata(names.ca),
      spec: { ca: { secretName: names.ca } },
    });
    issuerRef = { name: names.ca, kind: 'Issuer', group: 'cert-manager.io' };
  }
  const secrets = tlsSecrets(spec);
  kubeObject<ICertificate>(scope, 'MemberCertificate', { ...CERT_MANAGER, kind: 'Certificate' }, {
    metadata: store.metadata(secrets.member),
    spec: {
      secretName: secrets.member,
      commonName: `${names.headlessService}.${namespace}.svc.${spec.clusterDomain}`,
      dnsNames: memberDnsNames(store, namespace, maxSize),
      ipAddresses: ['127.0.0.1'],
      // Members are servers to clients and peers, and clients of their peers.
      usages: ['server auth', 'client auth', 'digital signature', 'key encipherment'],
      privateKey: PRIVATE_KEY,
      ...LEAF,
      issuerRef,
    },
  });
  // Each client of the spec: its common name is its etcd user.
  for (const client of spec.clients ?? []) {
    const name = clientCertName(names, client.name);
    kubeObject<ICertificate>(scope, `Client-${client.name}`, { ...CERT_MANAGER, kind: 'Certificate' }, {
      metadata: store.metadata(name),
      spec: { secretName: name, commonName: client.name, usages: ['client auth', 'digital signature', 'key encipherment'], privateKey: PRIVATE_KEY, ...LEAF, issuerRef },
    });
  }
  kubeObject<ICertificate>(scope, 'ClientCertificate', { ...CERT_MANAGER, kind: 'Certificate' }, {
    metadata: store.metadata(names.clientTls),
    spec: {
      secretName: secrets.client,
      commonName: LIBRARY_CLIENT_USER,
      usages: ['client auth', 'digital signature', 'key encipherment'],
      privateKey: PRIVATE_KEY,
      ...LEAF,
      issuerRef,
    },
  });
}
