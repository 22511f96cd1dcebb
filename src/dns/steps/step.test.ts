import { describe, expect, it } from 'vitest';
import { QType } from '../constants.js';
import { sourceFromText } from '../source.js';
import { LinkedStep, link, type DnsRequest, type Reply } from './step.js';
import { parsedRequest, recorder } from '../../../test/helpers/dns-steps.js';
import { query } from '../../../test/helpers/dns-util.js';

class Mark extends LinkedStep {
  constructor(private readonly trail: string[], private readonly label: string) {
    super();
  }
  serve(req: DnsRequest): Reply {
    this.trail.push(this.label);
    return this.next.serve(req);
  }
}

describe('steps: the request and the chain', () => {
  it('link() runs the steps in the order given, the last one ends the path', () => {
    const trail: string[] = [];
    const end = recorder(null);
    const path = link(new Mark(trail, 'a'), new Mark(trail, 'b'), new Mark(trail, 'c'), end);
    path.serve(parsedRequest(query('x.test', QType.A)));
    expect(trail).toEqual(['a', 'b', 'c']);
    expect(end.seen).toHaveLength(1);
  });

  it('a step used before it is linked says so', () => {
    expect(() => new Mark([], 'a').serve(parsedRequest(query('x.test', QType.A)))).toThrow(/before link/);
  });

  it('name() decodes once, lowercase; detach() survives the reuse of message and source memory', () => {
    const msg = query('WwW.Jitsu.TEST', QType.AAAA, { id: 9 });
    const source = sourceFromText('192.0.2.1');
    const req = parsedRequest(msg, 'tcp', source);
    expect(req.name()).toBe('www.jitsu.test');
    const kept = req.detach();
    msg.fill(0);
    source.bytes.fill(0);
    req.start(Buffer.alloc(12), 'udp', undefined);
    expect(kept.name()).toBe('www.jitsu.test');
    expect(kept.q).toMatchObject({ id: 9, qtype: QType.AAAA });
    expect(kept.transport).toBe('tcp');
    expect(kept.msg.readUInt16BE(0)).toBe(9);
    expect(kept.source?.bytes[0]).toBe(2); // AF_INET
  });
});
