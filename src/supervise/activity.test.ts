import { describe, expect, it } from 'vitest';
import { countOpenConnections, wasActive } from './activity.js';

const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 1400A8C0:0050 0100A8C0:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 1400A8C0:0050 0100A8C0:D2F2 06 00000000:00000000 03:00000A3B 00000000     0        0 0 3 0000000000000000
   3: 1400A8C0:0050 0100A8C0:D2F4 08 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`;

describe('idle accounting', () => {
  it('counts established and closing connections, not listeners or TIME_WAIT', () => {
    expect(countOpenConnections(TABLE)).toBe(2); // ESTABLISHED (01) and CLOSE_WAIT (08)
    expect(countOpenConnections(TABLE.split('\n')[0]!)).toBe(0);
  });

  it('is active with an open connection or moved bytes, not on the first sample alone', () => {
    expect(wasActive(undefined, { bytes: 100, connections: 0 })).toBe(false);
    expect(wasActive({ bytes: 100, connections: 0 }, { bytes: 100, connections: 0 })).toBe(false);
    expect(wasActive({ bytes: 100, connections: 0 }, { bytes: 160, connections: 0 })).toBe(true);
    expect(wasActive({ bytes: 100, connections: 0 }, { bytes: 100, connections: 1 })).toBe(true);
    expect(wasActive(undefined, { bytes: undefined, connections: 3 })).toBe(true);
    expect(wasActive({ bytes: undefined, connections: undefined }, { bytes: undefined, connections: undefined })).toBe(false);
  });
});
