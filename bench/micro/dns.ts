/** Micro tasks for the DNS layer: full codec, hot query parser, the handler's cached-answer path. */
import { decodeMessage, encodeMessage, type DnsMessage } from '../../src/dns/codec.js';
import { QClass, QType } from '../../src/dns/constants.js';
import { createDnsHandler } from '../../src/dns/handler.js';
import { ParsedQuery, parseQuery } from '../../src/dns/query.js';
import { ResponseRateLimiter } from '../../src/dns/rrl.js';
import { AddressSet, sourceFromText } from '../../src/dns/source.js';
import { createStaticSummoner } from '../../src/dns/static-summoner.js';
import { createLogger } from '../../src/observe/log.js';
import { MetricsRegistry } from '../../src/observe/metrics.js';
import { blackhole, type MicroTask } from './suite.js';

const BATCH = 1000;

function query(name: string, id = 0x1234): DnsMessage {
  return {
    id,
    qr: false,
    opcode: 0,
    aa: false,
    tc: false,
    rd: true,
    ra: false,
    ad: false,
    cd: false,
    rcode: 0,
    questions: [{ name, type: QType.A, class: QClass.IN }],
    answers: [],
    authorities: [],
    additionals: [],
    edns: { udpPayloadSize: 1232, version: 0, dnssecOk: false, options: [] },
  };
}

function response(name: string): DnsMessage {
  const m = query(name);
  m.qr = true;
  m.aa = true;
  m.answers = [{ name, type: QType.A, class: QClass.IN, ttl: 60, data: { kind: 'A', address: '10.205.0.10' } }];
  m.authorities = [
    {
      name: 'jitsu.test',
      type: QType.SOA,
      class: QClass.IN,
      ttl: 60,
      data: { kind: 'SOA', mname: 'ns.jitsu.test', rname: 'hostmaster.jitsu.test', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 },
    },
  ];
  return m;
}

export function dnsTasks(): MicroTask[] {
  const name = 'www.jitsu.test';
  const queryWire = encodeMessage(query(name));
  const responseMsg = response(name);
  const responseWire = encodeMessage(responseMsg);
  const parsed = new ParsedQuery();
  const handler = createDnsHandler({
    summoner: createStaticSummoner([{ service: 'www', names: [name], ipv4: ['10.205.0.10'], ttl: 60 }]),
    metrics: new MetricsRegistry(),
    logger: createLogger('silent'),
  });
  // The daemon's configuration: an off-host client, access list and RRL on (at a rate this loop
  // never reaches, so every answer pays for the bucket and none is limited).
  const limited = createDnsHandler({
    summoner: createStaticSummoner([{ service: 'www', names: [name], ipv4: ['10.205.0.10'], ttl: 60 }]),
    metrics: new MetricsRegistry(),
    logger: createLogger('silent'),
    allowForward: new AddressSet(['127.0.0.0/8', '::1/128', '10.205.0.0/24']),
    rrl: new ResponseRateLimiter({ rate: 1e12, slip: 2 }),
  });
  const client = sourceFromText('192.0.2.7');
  // First call fills the cache; the benchmark measures hits, as for a running service.
  if (!(handler.handle(queryWire, 'udp') instanceof Uint8Array)) throw new Error('handler did not answer the warm-up query synchronously');
  if (!(limited.handle(queryWire, 'udp', client) instanceof Uint8Array)) throw new Error('handler with RRL did not answer the warm-up query synchronously');
  let sink = 0;
  blackhole.keep = () => sink;
  const tasks: MicroTask[] = [
    {
      name: 'dns decodeMessage (query, EDNS)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) sink += decodeMessage(queryWire).id;
      },
    },
    {
      name: 'dns decodeMessage (answer A + SOA)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) sink += decodeMessage(responseWire).answers.length;
      },
    },
    {
      name: 'dns encodeMessage (answer A + SOA)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) sink += encodeMessage(responseMsg).length;
      },
    },
    {
      name: 'dns parseQuery (hot path)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          parseQuery(queryWire, parsed);
          sink += parsed.qtype;
        }
      },
    },
    {
      name: 'dns handler, cached answer (UDP)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          queryWire[1] = i & 0xff;
          const r = handler.handle(queryWire, 'udp') as Buffer;
          sink += r.length;
        }
      },
    },
    {
      name: 'dns handler, cached answer (UDP, off-host client, RRL on)',
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          queryWire[1] = i & 0xff;
          const r = limited.handle(queryWire, 'udp', client) as Buffer;
          sink += r.length;
        }
      },
    },
  ];
  return tasks;
}
