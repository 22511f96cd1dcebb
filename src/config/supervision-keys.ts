/**
 * The service keys of supervision (restart policy, start limit, idle rule): each key's default,
 * parser and help text live here, once. validate.ts applies them; `--help` lists them.
 */
import { IDLE_RULES, RESTART_POLICIES, type SupervisionPolicy } from '../supervise/policy.js';
import { parseEnum, parseInteger, parseNumber } from './values.js';

export const DEFAULT_POLICY: Readonly<SupervisionPolicy> = {
  restart: 'no',
  restartDelayMs: 100,
  startLimitBurst: 5,
  startLimitIntervalMs: 10_000,
  cooldownMs: 30_000,
  idle: 'traffic',
};

interface SupervisionKey {
  key: string;
  help: string;
  apply(policy: SupervisionPolicy, value: string): void;
}

export const SUPERVISION_KEYS: readonly SupervisionKey[] = [
  {
    key: 'restart',
    help: 'no|on-failure|always (default no: the next query boots it again; the others restart at once, with backoff)',
    apply: (p, v) => void (p.restart = parseEnum('restart', v, RESTART_POLICIES)),
  },
  {
    key: 'restart_sec',
    help: `seconds before an automatic restart, doubled per further failure in the start-limit window (default ${DEFAULT_POLICY.restartDelayMs / 1000})`,
    apply: (p, v) => void (p.restartDelayMs = parseNumber('restart_sec', v, 0, 3600) * 1000),
  },
  {
    key: 'start_limit_burst',
    help: `failures (failed boots, exits after ready) within start_limit_interval that make the service failed (default ${DEFAULT_POLICY.startLimitBurst})`,
    apply: (p, v) => void (p.startLimitBurst = parseInteger('start_limit_burst', v, 1, 1000)),
  },
  {
    key: 'start_limit_interval',
    help: `seconds (default ${DEFAULT_POLICY.startLimitIntervalMs / 1000})`,
    apply: (p, v) => void (p.startLimitIntervalMs = parseNumber('start_limit_interval', v, 0.1, 86_400) * 1000),
  },
  {
    key: 'cooldown',
    help: `seconds a failed service answers SERVFAIL at once before it may boot again (default ${DEFAULT_POLICY.cooldownMs / 1000})`,
    apply: (p, v) => void (p.cooldownMs = parseNumber('cooldown', v, 0, 86_400) * 1000),
  },
  {
    key: 'idle',
    help: 'traffic|queries: idle means no query and no connection or traffic (default), or the original\'s no query',
    apply: (p, v) => void (p.idle = parseEnum('idle', v, IDLE_RULES)),
  },
];

const BY_KEY = new Map(SUPERVISION_KEYS.map((k) => [k.key, k]));

export function isSupervisionKey(key: string): boolean {
  return BY_KEY.has(key);
}

/** The policy of one service from its supervision keys (each given at most once). */
export function parsePolicy(values: ReadonlyMap<string, string>): SupervisionPolicy {
  const policy: SupervisionPolicy = { ...DEFAULT_POLICY };
  for (const [key, value] of values) BY_KEY.get(key)?.apply(policy, value);
  return policy;
}
