/**
 * What we answer, record by record, for names of our zones (DESIGN.md section 3), encoded with the
 * full codec as authoritative replies (AA) to the query: a configured name's addresses, or NODATA
 * with the zone's SOA; NXDOMAIN with the SOA for other names in a zone; the SOA at its apex.
 * Adding a record type we answer means adding it here.
 */
import { decodeName, encodeMessage, type DnsMessage, type ResourceRecord } from '../codec.js';
import { EDNS_UDP_SIZE, Flag, HEADER_SIZE, Opcode, QClass, QType, Rcode } from '../constants.js';
import { zoneOfName } from '../static-summoner.js';
import type { ServiceAnswer, Summoner } from '../types.js';
import type { DnsRequest } from './step.js';

const SOA_REFRESH = 3600;
const SOA_RETRY = 600;
const SOA_EXPIRE = 86400;

export interface ZoneAnswersOptions {
  summoner: Summoner;
  /** SOA serial (the daemon's start time, in seconds). */
  serial: number;
  /** TTL (and SOA minimum) of negative answers for names without a service. */
  ttl: number;
  /** Whether replies say recursion is available (we forward). */
  ra: boolean;
}

export class ZoneAnswers {
  private readonly summoner: Summoner;
  private readonly serial: number;
  private readonly ttl: number;
  private readonly ra: boolean;

  constructor(opts: ZoneAnswersOptions) {
    this.summoner = opts.summoner;
    this.serial = opts.serial >>> 0;
    this.ttl = opts.ttl;
    this.ra = opts.ra;
  }

  /** A configured name: its A/AAAA records for A, AAAA and ANY; NODATA + SOA for other types or a family without addresses. */
  service(req: DnsRequest, answer: ServiceAnswer): Buffer {
    const qtype = req.q.qtype;
    const owner = decodeName(req.msg, HEADER_SIZE).name;
    const answers: ResourceRecord[] = [];
    if (qtype === QType.A || qtype === QType.ANY)
      for (const address of answer.ipv4) answers.push({ name: owner, type: QType.A, class: QClass.IN, ttl: answer.ttl, data: { kind: 'A', address } });
    if (qtype === QType.AAAA || qtype === QType.ANY)
      for (const address of answer.ipv6) answers.push({ name: owner, type: QType.AAAA, class: QClass.IN, ttl: answer.ttl, data: { kind: 'AAAA', address } });
    const authorities: ResourceRecord[] = [];
    if (answers.length === 0) {
      const name = req.name();
      authorities.push(this.soa(this.summoner.zoneOf(name) ?? zoneOfName(name), answer.ttl));
    }
    return this.encode(req, owner, Rcode.NOERROR, answers, authorities);
  }

  /** A name without a service inside `zone`: NXDOMAIN + SOA; at the apex its SOA (SOA, ANY) or NODATA + SOA. */
  negative(req: DnsRequest, zone: string): Buffer {
    const qtype = req.q.qtype;
    const apex = req.name() === zone;
    const soa = this.soa(zone, this.ttl);
    const soaAnswer = apex && (qtype === QType.SOA || qtype === QType.ANY);
    return this.encode(req, decodeName(req.msg, HEADER_SIZE).name, apex ? Rcode.NOERROR : Rcode.NXDOMAIN, soaAnswer ? [soa] : [], soaAnswer ? [] : [soa]);
  }

  /** The zone's SOA: `ns.<zone>`, `hostmaster.<zone>`, serial = start time, minimum = `ttl`. */
  soa(zone: string, ttl: number): ResourceRecord {
    const suffix = zone === '' ? '' : '.' + zone;
    return {
      name: zone,
      type: QType.SOA,
      class: QClass.IN,
      ttl,
      data: { kind: 'SOA', mname: 'ns' + suffix, rname: 'hostmaster' + suffix, serial: this.serial, refresh: SOA_REFRESH, retry: SOA_RETRY, expire: SOA_EXPIRE, minimum: ttl },
    };
  }

  /** A full authoritative reply (AA) to the query: its ID, RD and CD, its question as asked, our OPT if it had one. */
  private encode(req: DnsRequest, question: string, rcode: number, answers: ResourceRecord[], authorities: ResourceRecord[]): Buffer {
    const q = req.q;
    const m: DnsMessage = {
      id: q.id,
      qr: true,
      opcode: Opcode.QUERY,
      aa: true,
      tc: false,
      rd: (q.flags & Flag.RD) !== 0,
      ra: this.ra,
      ad: false,
      cd: (q.flags & Flag.CD) !== 0,
      rcode,
      questions: [{ name: question, type: q.qtype, class: q.qclass }],
      answers,
      authorities,
      additionals: [],
    };
    if (q.hasEdns) m.edns = { udpPayloadSize: EDNS_UDP_SIZE, version: 0, dnssecOk: q.ednsDo, options: [] };
    return encodeMessage(m);
  }
}
