// Test support: cuts one etcd member off from the others on the peer port, on this machine's loopback,
// with iptables rules in the filter table's OUTPUT chain (every loopback packet passes it once), and
// heals the cut by deleting exactly those rules.
//
// Why not just addresses: on loopback the kernel gives every outgoing connection the source 127.0.0.1,
// whatever pod address it dials, so a connection the isolated member dials to another member's peer
// port looks the same as one between two other members. So the cut is made of:
// - `-d <isolated ip> --dport <peer>` and `-s <isolated ip> --sport <peer>`: everything to and from the
//   isolated member's own peer port (the connections the others dialed to it), both directions;
// - `-m cgroup --path <tag> -d <other ip> --dport <peer>`: every connection the isolated member dials
//   from now on; its process is moved into a cgroup v2 of its own, named `<tag>`, first (a socket
//   belongs to the cgroup its process was in when it was made, so this matches new sockets only);
// - for each connection the isolated member had already dialed to another member's peer port (its
//   socket inodes in /proc/<pid>/fd, looked up in /proc/<pid>/net/tcp), that connection's 4-tuple,
//   both directions.
// Every rule carries `-m comment --comment <tag>`. heal() deletes the rules it added (same specs),
// moves the process back to its former cgroup and removes the new one; removeAll(tag) is the safety
// net that deletes any rule carrying the tag and the tag's cgroup. Client ports are left alone.
// Needs root, iptables (nft or legacy backend) with the cgroup and comment matches, and cgroup v2.
import { execFileSync } from 'child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'fs';
import { endianness } from 'os';
import { join } from 'path';

/** The iptables command that works here (nft backend first, then legacy), or undefined. */
const IPTABLES = ['iptables', 'iptables-legacy'].find((cmd) => {
  try {
    execFileSync(cmd, ['-w', '-S', 'OUTPUT'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

/** Where cgroup v2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host), or undefined. */
const CGROUP2_ROOT = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2')?.[1];

/** The chain the rules go in: on loopback every packet passes it once, on its way out. */
const CUT_CHAIN = ['OUTPUT'];

function iptables(args: string[]): void {
  execFileSync(IPTABLES!, ['-w', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why partitions cannot be made on this machine, or undefined when they can (checked with a real rule). */
export function partitionUnavailable(tag: string): string | undefined {
  if (process.getuid?.() !== 0) return 'network partitions need root (iptables, cgroups): run the tests as root';
  if (!IPTABLES) return 'iptables is not installed or does not work here: apt-get install iptables';
  if (!CGROUP2_ROOT) return 'cgroup v2 is not mounted: the partition identifies the isolated member\'s new connections by its cgroup';
  const probe = [...CUT_CHAIN, '-p', 'tcp', '-m', 'cgroup', '--path', tag, '--dport', '9', '-m', 'comment', '--comment', tag, '-j', 'DROP'];
  try {
    // An empty cgroup: the rule matches nothing while it exists.
    mkdirSync(join(CGROUP2_ROOT, tag), { recursive: true });
    iptables(['-I', ...probe]);
    iptables(['-D', ...probe]);
    return undefined;
  } catch (e) {
    return `${IPTABLES} cannot add a rule with the cgroup and comment matches: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? (e as Error).message}`;
  } finally {
    removeAll(tag);
  }
}

/** One TCP connection of a process, from /proc. */
interface Connection {
  readonly localIp: string;
  readonly localPort: number;
  readonly remoteIp: string;
  readonly remotePort: number;
}

/** An address of /proc/net/tcp ("0200147F:0950") as ip and port. */
function procAddress(hex: string): [string, number] {
  const [addr, port] = hex.split(':');
  const bytes = Buffer.from(addr, 'hex');
  if (endianness() === 'LE') bytes.reverse();
  return [[...bytes].join('.'), parseInt(port, 16)];
}

/** The IPv4 TCP connections whose sockets the process holds (listening ones excluded). */
function connectionsOf(pid: number): Connection[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed while listing
    }
  }
  return readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9 && inodes.has(f[9]) && f[3] !== '0A')
    .map((f) => {
      const [localIp, localPort] = procAddress(f[1]);
      const [remoteIp, remotePort] = procAddress(f[2]);
      return { localIp, localPort, remoteIp, remotePort };
    });
}

/** One partition: at most one member cut off at a time. */
export class Partition {
  private readonly rules: string[][] = [];
  private moved?: { pid: number; from: string };

  /** @param tag the comment on every rule and the name of the cgroup, unique to this test process */
  constructor(private readonly tag: string) {}

  /** Cuts the member (its etcd process and its pod address) off from the others on the peer port. */
  isolate(pid: number, ip: string, others: string[], peerPort = 2380): void {
    if (this.moved || this.rules.length) throw new Error('a partition is already in place: heal() it first');
    const cgroup = join(CGROUP2_ROOT!, this.tag);
    mkdirSync(cgroup, { recursive: true });
    const from = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))!.slice(3);
    writeFileSync(join(cgroup, 'cgroup.procs'), String(pid));
    this.moved = { pid, from };

    const port = String(peerPort);
    this.add(['-p', 'tcp', '-d', ip, '--dport', port]);
    this.add(['-p', 'tcp', '-s', ip, '--sport', port]);
    for (const other of others) this.add(['-p', 'tcp', '-m', 'cgroup', '--path', this.tag, '-d', other, '--dport', port]);
    // After the cgroup rules: a connection made since the move is matched by them, one made before is listed here.
    for (const c of connectionsOf(pid).filter((c) => c.remotePort === peerPort && others.includes(c.remoteIp))) {
      this.add(['-p', 'tcp', '-s', c.localIp, '--sport', String(c.localPort), '-d', c.remoteIp, '--dport', port]);
      this.add(['-p', 'tcp', '-s', c.remoteIp, '--sport', port, '-d', c.localIp, '--dport', String(c.localPort)]);
    }
  }

  /** How many rules are in place. */
  get ruleCount(): number {
    return this.rules.length;
  }

  /**
   * Deletes the rules this partition added (same specs), moves the process back to its cgroup (when it
   * still runs) and removes the partition's cgroup. Safe to call twice; throws the first failure after
   * trying everything.
   */
  heal(): void {
    const errors: unknown[] = [];
    for (const rule of this.rules.splice(0).reverse()) {
      try {
        iptables(['-D', ...rule]);
      } catch (e) {
        errors.push(e);
      }
    }
    if (this.moved) {
      const { pid, from } = this.moved;
      this.moved = undefined;
      try {
        if (existsSync(`/proc/${pid}`)) writeFileSync(join(CGROUP2_ROOT!, from, 'cgroup.procs'), String(pid));
        rmdirSync(join(CGROUP2_ROOT!, this.tag));
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw errors[0];
  }

  private add(match: string[]): void {
    const rule = [...CUT_CHAIN, ...match, '-m', 'comment', '--comment', this.tag, '-j', 'DROP'];
    iptables(['-I', ...rule]);
    this.rules.push(rule);
  }
}

/**
 * The safety net: deletes every OUTPUT rule carrying the comment `tag`, moves any process left in the
 * cgroup `tag` to the cgroup v2 root, and removes that cgroup.
 */
export function removeAll(tag: string): void {
  if (IPTABLES) {
    const listed = execFileSync(IPTABLES, ['-w', '-S', ...CUT_CHAIN], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const line of listed.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[0] === '-A' && f.includes('--comment') && f[f.indexOf('--comment') + 1] === tag) iptables(['-D', ...f.slice(1)]);
    }
  }
  const cgroup = CGROUP2_ROOT && join(CGROUP2_ROOT, tag);
  if (cgroup && existsSync(cgroup)) {
    for (const pid of readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      writeFileSync(join(CGROUP2_ROOT!, 'cgroup.procs'), pid);
    }
    rmdirSync(cgroup);
  }
}
