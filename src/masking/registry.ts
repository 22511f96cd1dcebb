/** Every boot-masking strategy by name: the one list `mask=` values come from. */
import { activate } from './activate.js';
import { handshake } from './handshake.js';
import { none } from './none.js';
import { park } from './park.js';
import type { MaskRequirement, MaskStrategy } from './strategy.js';

const STRATEGIES = [none, activate, park, handshake] as const;

export type MaskMode = (typeof STRATEGIES)[number]['name'];
export const MASK_MODES: readonly MaskMode[] = STRATEGIES.map((s) => s.name);

const BY_NAME = new Map<string, MaskStrategy<MaskMode>>(STRATEGIES.map((s) => [s.name, s]));

export function maskStrategy(mode: MaskMode): MaskStrategy<MaskMode> {
  return BY_NAME.get(mode)!;
}

/** The strategies a backend with these abilities supports (no requirement, or one it meets). */
export function supportedMasks(abilities: Readonly<Record<MaskRequirement, boolean>>): MaskMode[] {
  return STRATEGIES.filter((s) => s.requires === undefined || abilities[s.requires]).map((s) => s.name);
}

export type { MaskRequirement, MaskStrategy, SegmentHandling } from './strategy.js';
