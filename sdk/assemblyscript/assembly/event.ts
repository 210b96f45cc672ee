// The wire-format event (guard/event/wire.go) as the SDK reads it:
//   event  := u32 total_len | u16 kind | u16 nrec | record*
//   record := u16 field_id | u16 index | u32 len | len bytes
// Records are sorted by (field_id, index); zero values are omitted, so an
// absent field reads as zero / empty.

/** Addr is an address value: 4 bytes (IPv4), 16 bytes (IPv6), or absent. */
export class Addr {
  constructor(public ptr: usize, public len: i32) {}

  isValid(): bool { return this.len == 4 || this.len == 16; }
  is4(): bool { return this.len == 4; }
  is6(): bool { return this.len == 16; }
  /** byte i in network order. */
  byte(i: i32): u8 { return i >= 0 && i < this.len ? load<u8>(this.ptr + <usize>i) : 0; }

  /** isLoopback: 127.0.0.0/8 or ::1. */
  isLoopback(): bool {
    if (this.len == 4) return this.byte(0) == 127;
    if (this.len != 16) return false;
    for (let i = 0; i < 15; i++) if (this.byte(i) != 0) return false;
    return this.byte(15) == 1;
  }

  toString(): string {
    if (this.len == 4) return `${this.byte(0)}.${this.byte(1)}.${this.byte(2)}.${this.byte(3)}`;
    if (this.len != 16) return "";
    let s = "";
    for (let i = 0; i < 16; i += 2) {
      if (i > 0) s += ":";
      s += ((<u32>this.byte(i) << 8) | this.byte(i + 1)).toString(16);
    }
    return s;
  }
}

/** StrList is a string-list value: (u16 len, bytes) repeated. */
export class StrList {
  constructor(public ptr: usize, public len: i32) {}

  /** count returns the number of items. */
  count(): i32 {
    let n = 0;
    for (let off = 0; off + 2 <= this.len; n++) {
      const l = <i32>load<u16>(this.ptr + <usize>off);
      if (l > this.len - off - 2) break;
      off += 2 + l;
    }
    return n;
  }

  /** at returns item i, or "" past the end. */
  at(i: i32): string {
    for (let off = 0, k = 0; off + 2 <= this.len; k++) {
      const l = <i32>load<u16>(this.ptr + <usize>off);
      if (l > this.len - off - 2) break;
      if (k == i) return String.UTF8.decodeUnsafe(this.ptr + <usize>off + 2, <usize>l);
      off += 2 + l;
    }
    return "";
  }

  /** contains reports whether some item equals s (compared as UTF-8 bytes, no decoding). */
  contains(s: string): bool {
    const want = String.UTF8.encode(s);
    const wp = changetype<usize>(want), wl = want.byteLength;
    for (let off = 0; off + 2 <= this.len; ) {
      const l = <i32>load<u16>(this.ptr + <usize>off);
      if (l > this.len - off - 2) break;
      if (l == wl && memory.compare(this.ptr + <usize>off + 2, wp, <usize>l) == 0) return true;
      off += 2 + l;
    }
    return false;
  }

  toArray(): string[] {
    const out = new Array<string>();
    const n = this.count();
    for (let i = 0; i < n; i++) out.push(this.at(i));
    return out;
  }
}

/** EventCore holds one wire event and reads raw values; the generated Event adds a getter per field. */
export class EventCore {
  ptr: usize = 0;
  len: i32 = 0;
  /** index is the event's position in the batch. */
  index: i32 = 0;
  private vlen: i32 = 0;

  /** kind returns the event's kind (a Kind value). */
  kind(): i32 { return <i32>load<u16>(this.ptr + 4); }

  /** raw returns a pointer to field id's value at element index idx (0 for ordinary fields), or 0 when absent; rawLen is its length. */
  raw(id: i32, idx: i32 = 0): usize {
    const n = <i32>load<u16>(this.ptr + 6);
    let off = 8;
    for (let i = 0; i < n && off + 8 <= this.len; i++) {
      const p = this.ptr + <usize>off;
      const fid = <i32>load<u16>(p), fidx = <i32>load<u16>(p + 2);
      const l = <i32>load<u32>(p + 4);
      if (l < 0 || l > this.len - off - 8 || fid > id || (fid == id && fidx > idx)) return 0;
      if (fid == id && fidx == idx) {
        this.vlen = l;
        return p + 8;
      }
      off += 8 + l;
    }
    return 0;
  }

  /** rawLen is the length of the value the last successful raw call found. */
  rawLen(): i32 { return this.vlen; }

  has(id: i32): bool { return this.raw(id) != 0; }

  u64(id: i32): u64 {
    const p = this.raw(id);
    return p != 0 && this.vlen == 8 ? load<u64>(p) : 0;
  }

  i64(id: i32): i64 { return <i64>this.u64(id); }

  bool(id: i32): bool {
    const p = this.raw(id);
    return p != 0 && this.vlen == 1 && load<u8>(p) == 1;
  }

  str(id: i32): string {
    const p = this.raw(id);
    return p == 0 ? "" : String.UTF8.decodeUnsafe(p, <usize>this.vlen);
  }

  /** strEq compares a string field with s without decoding it. */
  strEq(id: i32, s: string): bool {
    const p = this.raw(id);
    const l = p == 0 ? 0 : this.vlen;
    const want = String.UTF8.encode(s);
    return want.byteLength == l && (l == 0 || memory.compare(p, changetype<usize>(want), <usize>l) == 0);
  }

  list(id: i32): StrList {
    const p = this.raw(id);
    return new StrList(p, p == 0 ? 0 : this.vlen);
  }

  addr(id: i32): Addr {
    const p = this.raw(id);
    const l = p == 0 ? 0 : this.vlen;
    return new Addr(p, l == 4 || l == 16 ? l : 0);
  }
}
