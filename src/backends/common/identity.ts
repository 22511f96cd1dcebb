/**
 * Who a service runs as: the user/group lookup the process, container and QEMU backends share
 * (the process backend's launcher, QEMU's `-run-with user=`). Numbers need no passwd entry.
 */
import { readSmallFile } from '../../system/files.js';
import { JitsuError } from '../../errors.js';

/** The unprivileged system user services run as unless `user=` says otherwise; scripts/setup.sh creates it. */
export const DEFAULT_SERVICE_USER = 'jitsu-svc';

/** The explicit opt-out: `user=root` runs unconfined (uid 0, every capability), as before. */
export const ROOT_USER = 'root';

export interface Identity {
  user: string;
  uid: number;
  gid: number;
}

interface DbEntry {
  name: string;
  id: number;
  /** passwd: the primary group. */
  gid?: number;
}

function readDb(path: string, withGid: boolean): DbEntry[] {
  let text = '';
  try {
    text = readSmallFile(path, 'utf8');
  } catch {
    return [];
  }
  const out: DbEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !/^\d+$/.test(f[2]!)) continue;
    out.push({ name: f[0]!, id: Number(f[2]), ...(withGid && /^\d+$/.test(f[3]!) ? { gid: Number(f[3]) } : {}) });
  }
  return out;
}

/** A name or a number, looked up in `entries`. */
function lookup(entries: DbEntry[], nameOrId: string): DbEntry | undefined {
  if (/^\d+$/.test(nameOrId)) return entries.find((e) => e.id === Number(nameOrId)) ?? { name: nameOrId, id: Number(nameOrId) };
  return entries.find((e) => e.name === nameOrId);
}

export interface IdentityFiles {
  passwd: string;
  group: string;
}

const SYSTEM_FILES: IdentityFiles = { passwd: '/etc/passwd', group: '/etc/group' };

/**
 * The uid/gid a service runs as: `user` (a name from /etc/passwd, or a number), `group` (a name
 * from /etc/group, or a number; default the user's primary group). Numbers need no entry. The
 * default user missing is the usual case on a host that never ran setup: the message says so.
 */
export function resolveIdentity(service: string, user: string, group: string | undefined, files: IdentityFiles = SYSTEM_FILES): Identity {
  const u = lookup(readDb(files.passwd, true), user);
  if (!u) {
    const fix =
      user === DEFAULT_SERVICE_USER
        ? `run scripts/setup.sh (or scripts/setup.sh --create-user) to create it, or set user=${ROOT_USER} to run the service unconfined`
        : `create it, or name an existing user (default ${DEFAULT_SERVICE_USER})`;
    throw new JitsuError('BOOT_FAILED', `service ${service}: user ${user} does not exist: ${fix}`, { service, key: 'user', value: user });
  }
  let gid = u.gid;
  if (group !== undefined) {
    const g = lookup(readDb(files.group, false), group);
    if (!g) throw new JitsuError('BOOT_FAILED', `service ${service}: group ${group} does not exist: create it or name an existing group`, { service, key: 'group', value: group });
    gid = g.id;
  }
  if (gid === undefined) {
    throw new JitsuError('BOOT_FAILED', `service ${service}: user ${user} is a bare uid without a primary group: set group= too`, { service, key: 'group' });
  }
  return { user: u.name, uid: u.id, gid };
}
