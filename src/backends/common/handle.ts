/**
 * Reading and writing a backend's `handle.data`. Handles are plain JSON that outlive the worker and
 * the daemon that made them (state.json, adoption after a restart), so what comes back is checked,
 * not trusted: a handle that lacks a field every call of its backend relies on is STATE_CORRUPT,
 * naming the fields, instead of a TypeError deep inside a stop.
 *
 * A backend declares its data as a TypeScript interface and, at run time, which of its fields (and
 * whether the handle's `pid`) are required on every call. The other fields are typed but not
 * checked: they were written by the same backend's start(), and some calls (state, a stop of a
 * stopped service) work on handles that carry only the required ones.
 */
import type { BackendHandle, BackendName, JsonValue } from '../backend.js';
import { JitsuError } from '../../errors.js';

/** The JSON kinds a checked field can have. */
export type FieldKind = 'string' | 'number' | 'boolean' | 'number[]';

type KindOf<T> = T extends string ? 'string' : T extends number ? 'number' : T extends boolean ? 'boolean' : T extends readonly number[] ? 'number[]' : never;

/** Which fields of `Data` every call needs, each with its kind (checked against the interface). */
export type RequiredFields<Data> = { readonly [K in keyof Data]?: KindOf<NonNullable<Data[K]>> };

/** Handle data as JSON: every field is a JSON value (or absent). */
export type JsonData<Data> = { [K in keyof Data]: JsonValue | undefined };

export interface HandleShape<Data> {
  backend: BackendName;
  required: RequiredFields<Data>;
  /** `true`: the handle's `pid` (the service's main process on this host) is required too. */
  pid?: boolean;
}

export interface DecodedHandle<Data, Pid> {
  data: Data;
  pid: Pid;
}

export interface HandleCodec<Data, Pid> {
  /** `handle.data` as `Data` (and its pid); STATE_CORRUPT naming the missing or mistyped fields. */
  read(handle: BackendHandle): DecodedHandle<Data, Pid>;
  /** `data` as the JSON a handle carries. */
  write(data: Data): { [key: string]: JsonValue };
}

function hasKind(value: JsonValue | undefined, kind: FieldKind): boolean {
  if (kind === 'number[]') return Array.isArray(value) && value.every((v) => typeof v === 'number');
  return typeof value === kind;
}

export function handleCodec<Data extends JsonData<Data>>(shape: HandleShape<Data> & { pid: true }): HandleCodec<Data, number>;
export function handleCodec<Data extends JsonData<Data>>(shape: HandleShape<Data>): HandleCodec<Data, number | undefined>;
export function handleCodec<Data extends JsonData<Data>>(shape: HandleShape<Data>): HandleCodec<Data, number | undefined> {
  const required = Object.entries(shape.required) as [string, FieldKind][];
  return {
    read(handle) {
      const missing = required.filter(([field, kind]) => !hasKind(handle.data[field], kind)).map(([field]) => field);
      if (shape.pid && typeof handle.pid !== 'number') missing.unshift('pid');
      if (missing.length > 0) {
        throw new JitsuError('STATE_CORRUPT', `${shape.backend} handle for ${handle.service} lacks ${missing.join('/')}`, { service: handle.service, missing });
      }
      // Checked above: the required fields; the rest is what this backend's start() wrote.
      return { data: handle.data as unknown as Data, pid: handle.pid };
    },
    write(data) {
      return data as unknown as { [key: string]: JsonValue };
    },
  };
}
