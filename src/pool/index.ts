export { BackendPool, defaultWorkerFile } from './pool.js';
export type { BackendPoolOptions } from './pool.js';
export type { PoolRequest, PoolResponse, PoolResults, PoolOp, WireError } from './protocol.js';
