export * from './kv-store';
export * from './spec';
export * from './names';
export * from './quantity';
export * from './engines/types';
export * from './engines/engine';
export * from './engines/etcd';
export * from './engines/custom';
