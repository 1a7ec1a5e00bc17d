// The typed options of a store that are more than a primitive: enum-like values and option interfaces.
// Their values are the strings of the spec (lib/model/spec.ts), which a KVStore resource carries.
import type { UpdateStrategySpec } from '../model/spec';

/** What happens to PVCs when the store shrinks or is deleted. */
export enum PvcRetention {
  /** The PVC stays (and its data with it). */
  RETAIN = 'Retain',
  /** The PVC is deleted with its member. */
  DELETE = 'Delete',
}

/** @see https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#pod-management-policies */
export enum PodManagementPolicy {
  /** One pod at a time, each Ready before the next. */
  ORDERED_READY = 'OrderedReady',
  /** All pods at once. */
  PARALLEL = 'Parallel',
}

/** How members are kept on separate nodes. */
export enum PodAntiAffinity {
  /** Prefer separate nodes; schedule together if there is no other way. */
  SOFT = 'soft',
  /** Require separate nodes: a member stays Pending rather than share a node. */
  HARD = 'hard',
  /** No anti-affinity. */
  NONE = 'none',
}

/** @see https://kubernetes.io/docs/concepts/storage/persistent-volumes/#access-modes */
export enum AccessMode {
  /** Read-write by one node. */
  READ_WRITE_ONCE = 'ReadWriteOnce',
  /** Read-only by many nodes. */
  READ_ONLY_MANY = 'ReadOnlyMany',
  /** Read-write by many nodes. */
  READ_WRITE_MANY = 'ReadWriteMany',
  /** Read-write by one pod. */
  READ_WRITE_ONCE_POD = 'ReadWriteOncePod',
}

/** @see https://kubernetes.io/docs/concepts/scheduling-eviction/topology-spread-constraints/ */
export enum WhenUnsatisfiable {
  /** Keep a pod Pending rather than break the skew. */
  DO_NOT_SCHEDULE = 'DoNotSchedule',
  /** Schedule anyway, preferring domains that reduce the skew. */
  SCHEDULE_ANYWAY = 'ScheduleAnyway',
}

/** @see https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#update-strategies */
export class UpdateStrategy {
  /** Replace pods from the highest ordinal down; ordinals below `partition` keep the old template. */
  static rollingUpdate(options: RollingUpdateOptions = {}): UpdateStrategy {
    return new UpdateStrategy({ type: 'RollingUpdate', partition: options.partition ?? 0 });
  }

  /** Pods are only replaced when you delete them. */
  static onDelete(): UpdateStrategy {
    return new UpdateStrategy({ type: 'OnDelete' });
  }

  /** @internal */
  private constructor(
    /** @internal The strategy as the spec stores it. */
    readonly _spec: UpdateStrategySpec,
  ) {}
}

/** Options of `UpdateStrategy.rollingUpdate()`. */
export interface RollingUpdateOptions {
  /**
   * Ordinals below the partition keep the old template (a staged rollout).
   * @default 0
   */
  readonly partition?: number;
}

/** One PVC template; each member gets its own PVC from it, mounted in the container. */
export interface VolumeClaimTemplateOptions {
  /** Template name; PVCs are named `<name>-<store>-<ordinal>`. */
  readonly name: string;
  /**
   * The size of each PVC, as a Kubernetes quantity.
   * @default - the store's `storageSize`
   */
  readonly storage?: string;
  /**
   * StorageClass of the PVCs.
   * @default - the store's `storageClassName`
   */
  readonly storageClassName?: string;
  /**
   * How the volumes may be mounted.
   * @default [AccessMode.READ_WRITE_ONCE]
   */
  readonly accessModes?: AccessMode[];
  /**
   * Where the container mounts the volume.
   * @default '/var/lib/kvstore/<name>'
   */
  readonly mountPath?: string;
}

/** One topology spread constraint over the store's pods. */
export interface TopologySpreadOptions {
  /** A node label, e.g. `topology.kubernetes.io/zone`. */
  readonly topologyKey: string;
  /**
   * How much the number of members may differ between two domains.
   * @default 1
   */
  readonly maxSkew?: number;
  /**
   * What the scheduler does with a member that would break the skew.
   * @default WhenUnsatisfiable.SCHEDULE_ANYWAY
   */
  readonly whenUnsatisfiable?: WhenUnsatisfiable;
}

/** Whether a member's PVCs are kept when the store shrinks or is deleted. */
export interface PvcRetentionPolicy {
  /**
   * What happens to a removed member's PVCs when the store shrinks.
   * @default PvcRetention.RETAIN
   */
  readonly whenScaled?: PvcRetention;
  /**
   * What happens to the PVCs when the StatefulSet is deleted.
   * @default PvcRetention.RETAIN
   */
  readonly whenDeleted?: PvcRetention;
}

/** The engine container's resource requests and limits, as Kubernetes quantities by resource name. */
export interface ResourceRequirements {
  /**
   * What the scheduler reserves, e.g. `{ cpu: '100m', memory: '256Mi' }`.
   * @default - none
   */
  readonly requests?: { [resource: string]: string };
  /**
   * What the container may use at most (at least the request).
   * @default - none
   */
  readonly limits?: { [resource: string]: string };
}

/** How a toleration matches a taint's value. */
export enum TolerationOperator {
  /** The taint has the toleration's key, whatever its value (no key: every taint). */
  EXISTS = 'Exists',
  /** The taint has the toleration's key and value. */
  EQUAL = 'Equal',
}

/** The effect of a node taint. */
export enum TaintEffect {
  /** New pods are not scheduled on the node. */
  NO_SCHEDULE = 'NoSchedule',
  /** The scheduler avoids the node. */
  PREFER_NO_SCHEDULE = 'PreferNoSchedule',
  /** Running pods are evicted too. */
  NO_EXECUTE = 'NoExecute',
}

/** A node taint the store's pods tolerate. @see https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/ */
export interface TolerationOptions {
  /**
   * The taint key.
   * @default - every key (operator Exists only)
   */
  readonly key?: string;
  /**
   * How the taint's value is matched.
   * @default TolerationOperator.EQUAL
   */
  readonly operator?: TolerationOperator;
  /**
   * The taint value (operator Equal).
   * @default - the empty value
   */
  readonly value?: string;
  /**
   * The effect tolerated.
   * @default - every effect
   */
  readonly effect?: TaintEffect;
  /**
   * With effect NoExecute: seconds the pod stays on the node after the taint appears.
   * @default - forever
   */
  readonly tolerationSeconds?: number;
}

/**
 * An RFC 6902 JSON Patch operation. No `test`: the reconciler renders the same objects at other sizes
 * and states, where a test that held at synth could fail half-way through an operation.
 */
export enum PatchOp {
  /** Add a value (to an object member or an array position; "-" appends). */
  ADD = 'add',
  /** Remove the value at path. */
  REMOVE = 'remove',
  /** Replace the value at path. */
  REPLACE = 'replace',
  /** Move the value at from to path. */
  MOVE = 'move',
  /** Copy the value at from to path. */
  COPY = 'copy',
}

/** One JSON Patch operation on a synthesized object. */
export interface JsonPatchOperation {
  /** The operation. */
  readonly op: PatchOp;
  /** A JSON Pointer into the object, such as `/spec/template/spec/hostAliases`. */
  readonly path: string;
  /**
   * The value (add, replace).
   * @default - none
   */
  readonly value?: any;
  /**
   * The source pointer (move, copy).
   * @default - none
   */
  readonly from?: string;
}

/**
 * JSON Patch operations on the store's synthesized objects of one kind (and name): the escape hatch for
 * what the props don't cover. Part of the spec, so the reconciler applies them too.
 */
export interface ObjectPatch {
  /** The kind of the objects patched: StatefulSet, Service, ConfigMap, PodDisruptionBudget, NetworkPolicy, CronJob or PersistentVolumeClaim. */
  readonly kind: string;
  /**
   * The name of the one object patched.
   * @default - every object of that kind
   */
  readonly name?: string;
  /** The operations, applied in order. */
  readonly ops: JsonPatchOperation[];
}
