import type { Backend, BackendName } from './backend.js';
import { BACKEND_NAMES } from './backend.js';
import { JitsuError } from '../errors.js';
import { backend as processBackend } from './process/index.js';
import { backend as qemuBackend } from './qemu/index.js';
import { backend as libvirtBackend } from './libvirt/index.js';
import { backend as containerBackend } from './container/index.js';
import { backend as xlBackend } from './xl/index.js';

const backends: Record<BackendName, Backend> = {
  process: processBackend,
  qemu: qemuBackend,
  libvirt: libvirtBackend,
  container: containerBackend,
  xl: xlBackend,
};

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

export function getBackend(name: string): Backend {
  if (!isBackendName(name)) {
    throw new JitsuError('BACKEND_UNKNOWN', `unknown backend "${name}": use one of ${BACKEND_NAMES.join('|')}`, { backend: name });
  }
  return backends[name];
}

export function allBackends(): readonly Backend[] {
  return BACKEND_NAMES.map((n) => backends[n]);
}
