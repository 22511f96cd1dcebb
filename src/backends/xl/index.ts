// Placeholder until the xl backend lands: every call fails with BACKEND_UNSUPPORTED.
import type { Backend } from '../backend.js';
import { JitsuError } from '../../errors.js';

const unsupported = (): never => {
  throw new JitsuError('BACKEND_UNSUPPORTED', 'the xl backend is not built yet');
};

export const backend: Backend = {
  name: 'xl',
  summary: 'xl backend (not built yet)',
  capabilities: { stopModes: ['destroy'], maskModes: ['none'], defaultMask: 'none' },
  options: [],
  start: async () => unsupported(),
  ready: async () => unsupported(),
  stop: async () => unsupported(),
  state: async () => unsupported(),
};
