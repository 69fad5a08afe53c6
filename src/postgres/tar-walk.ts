/**
 * Follows a tar stream (pg_basebackup -Ft writes ustar) header by header as it passes, without
 * copying file contents: it knows at every byte which member it is in, and captures the content of
 * a few small members by name (backup_label, backup_manifest). Costs one 512-byte header parse per
 * member, so it can sit in a base backup's stream of gigabytes.
 */

const blockSize = 512;

export interface TarPosition {
  /** The member whose header or content (including the padding after it) the next byte belongs to; null at a header boundary. */
  member: string | null;
  /** Offset of the next byte from the start of that member's header. */
  offsetInMember: number;
}

interface Member {
  name: string;
  /** Header plus content plus padding. */
  totalBytes: number;
  consumed: number;
  capture: Buffer[] | undefined;
  contentBytes: number;
}

export class TarWalker {
  private header = Buffer.alloc(blockSize);
  private headerBytes = 0;
  private member: Member | undefined;
  private longName: string | undefined;
  private ended = false;
  private readonly captured = new Map<string, Buffer>();
  /** Members seen, end-of-archive blocks excluded. */
  members = 0;

  /** Members whose content to keep (small files only: the content is held in memory). */
  constructor(private readonly captureNames: ReadonlySet<string>, private readonly maxCaptureBytes = 256 << 20) {}

  get position(): TarPosition {
    if (this.member) return { member: this.member.name, offsetInMember: this.member.consumed };
    return { member: null, offsetInMember: this.headerBytes };
  }

  /** True once the end-of-archive zero block was seen. */
  get complete(): boolean {
    return this.ended;
  }

  /** The content of a captured member, if it was in the stream. */
  content(name: string): Buffer | undefined {
    return this.captured.get(name);
  }

  /** Feeds the next bytes of the stream. Throws when they are not a tar stream. */
  observe(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.ended) return; // zero padding after the end-of-archive blocks
      if (this.member) {
        const take = Math.min(chunk.length - offset, this.member.totalBytes - this.member.consumed);
        this.captureContent(chunk, offset, take);
        this.member.consumed += take;
        offset += take;
        if (this.member.consumed === this.member.totalBytes) this.finishMember();
        continue;
      }
      const take = Math.min(chunk.length - offset, blockSize - this.headerBytes);
      chunk.copy(this.header, this.headerBytes, offset, offset + take);
      this.headerBytes += take;
      offset += take;
      if (this.headerBytes === blockSize) this.startMember();
    }
  }

  private startMember(): void {
    this.headerBytes = 0;
    if (this.header.every((byte) => byte === 0)) {
      this.ended = true;
      return;
    }
    const parsed = parseHeader(this.header);
    const name = this.longName ?? parsed.name;
    this.longName = undefined;
    const paddedContent = Math.ceil(parsed.size / blockSize) * blockSize;
    // GNU long names ('L') and pax headers ('x', 'g') describe the next member; keep an 'L' name.
    const isMeta = parsed.type === 'L' || parsed.type === 'x' || parsed.type === 'g';
    const capture = parsed.type === 'L' || (!isMeta && this.captureNames.has(name) && parsed.size <= this.maxCaptureBytes) ? [] : undefined;
    if (!isMeta) this.members += 1;
    this.member = { name: parsed.type === 'L' ? '\0longname' : name, totalBytes: blockSize + paddedContent, consumed: blockSize, capture, contentBytes: parsed.size };
    if (paddedContent === 0) this.finishMember();
  }

  private captureContent(chunk: Buffer, offset: number, length: number): void {
    const member = this.member!;
    if (!member.capture) return;
    const contentStart = blockSize;
    const contentEnd = blockSize + member.contentBytes;
    const from = Math.max(member.consumed, contentStart);
    const to = Math.min(member.consumed + length, contentEnd);
    if (to > from) member.capture.push(Buffer.from(chunk.subarray(offset + (from - member.consumed), offset + (to - member.consumed))));
  }

  private finishMember(): void {
    const member = this.member!;
    this.member = undefined;
    if (!member.capture) return;
    const content = Buffer.concat(member.capture);
    if (member.name === '\0longname') this.longName = content.toString('utf8').replace(/\0+$/, '');
    else this.captured.set(member.name, content);
  }
}

export class NotATarStream extends Error {
  override readonly name = 'NotATarStream';
}

function parseHeader(block: Buffer): { name: string; size: number; type: string } {
  const stored = parseOctal(block.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < blockSize; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (stored !== sum) throw new NotATarStream(`bad tar header checksum (stored ${stored}, computed ${sum})`);
  const name = cString(block, 0, 100);
  const ustar = block.subarray(257, 262).toString('latin1') === 'ustar';
  const prefix = ustar ? cString(block, 345, 155) : '';
  return { name: prefix ? `${prefix}/${name}` : name, size: parseSize(block.subarray(124, 136)), type: String.fromCharCode(block[156] || 0x30) };
}

function cString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString('utf8');
}

function parseSize(field: Buffer): number {
  // Sizes of 8 GiB and more are base-256: the high bit of the first byte set, big-endian after it.
  if (field[0]! & 0x80) {
    let value = 0n;
    for (let i = 1; i < field.length; i++) value = (value << 8n) | BigInt(field[i]!);
    return Number(value);
  }
  return parseOctal(field);
}

function parseOctal(field: Buffer): number {
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (!/^[0-7]*$/.test(text)) throw new NotATarStream(`bad octal field ${JSON.stringify(text)} in a tar header`);
  return text === '' ? 0 : parseInt(text, 8);
}
