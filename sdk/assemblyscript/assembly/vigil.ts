// The AssemblyScript SDK for Vigil rule modules (wasm-rules/ABI.md, version 1).
//
// A rule is metadata plus one function from an event to a verdict:
//
//   import { Event, Field, Kind, Priority, Rule, Verdict, register, fire, allow } from "vigil/assembly/vigil";
//   export * from "vigil/assembly/exports"; // the ABI exports
//
//   register(new Rule("Terminal shell in container", [Kind.Exec], Priority.Warning),
//     (e: Event): Verdict => {
//       const n = e.procName();
//       if (e.containerId() != "" && (n == "bash" || n == "sh")) return fire("shell in container", [Field.ProcName]);
//       return allow();
//     });
//
// The SDK checks each rule's kinds before calling it. Build with
// `vigil rules build DIR` (asc --runtime incremental --use abort=...).

import { Event, Field, Kind, kindName } from "./fields";
export { Event, Field, Kind, kindName } from "./fields";
export { Addr, StrList } from "./event";

/** Falco-style severity, most severe first; Default means "the rule's own priority". */
export enum Priority {
  Emergency = 0,
  Alert = 1,
  Critical = 2,
  Error = 3,
  Warning = 4,
  Notice = 5,
  Informational = 6,
  Debug = 7,
  Default = 255,
}

/** What a verdict asks the guard to do; Default means "the rule's own action". */
export enum Action {
  Alert = 1,
  Kill = 2,
  Block = 3,
  Default = 255,
}

function priorityName(p: Priority): string {
  switch (p) {
    case Priority.Emergency: return "Emergency";
    case Priority.Alert: return "Alert";
    case Priority.Critical: return "Critical";
    case Priority.Error: return "Error";
    case Priority.Notice: return "Notice";
    case Priority.Informational: return "Informational";
    case Priority.Debug: return "Debug";
  }
  return "Warning";
}

/** Rule is one rule's metadata; priority and action are its defaults. */
export class Rule {
  version: string = "";
  description: string = "";
  tags: string[] = [];

  constructor(public name: string, public kinds: Kind[], public priority: Priority = Priority.Warning,
    public action: Action = Action.Alert) {}

  withVersion(v: string): Rule { this.version = v; return this; }
  withDescription(d: string): Rule { this.description = d; return this; }
  withTags(t: string[]): Rule { this.tags = t; return this; }
}

const TYPE_NONE: u8 = 0, TYPE_VERDICT: u8 = 1, TYPE_OBSERVATION: u8 = 2;

/** Verdict is what a rule returns for one event; allow() emits nothing. */
export class Verdict {
  constructor(public type: u8, public action: Action, public priority: Priority, public message: string,
    public fields: Field[]) {}
}

const ALLOW = new Verdict(TYPE_NONE, Action.Default, Priority.Default, "", []);

/** allow returns the verdict that emits nothing. */
export function allow(): Verdict { return ALLOW; }

/** alert reports the event; the host copies fields (at most 16) from the event into the alert. */
export function alert(p: Priority, msg: string, fields: Field[] = []): Verdict {
  return new Verdict(TYPE_VERDICT, Action.Alert, p, msg, fields);
}

/** kill asks the guard to kill the acting process (audit mode records it). */
export function kill(p: Priority, msg: string, fields: Field[] = []): Verdict {
  return new Verdict(TYPE_VERDICT, Action.Kill, p, msg, fields);
}

/** block asks the guard to deny the operation (EPERM, or admission denial). */
export function block(p: Priority, msg: string, fields: Field[] = []): Verdict {
  return new Verdict(TYPE_VERDICT, Action.Block, p, msg, fields);
}

/** fire reports the event with the rule's default action and priority. */
export function fire(msg: string, fields: Field[] = []): Verdict {
  return new Verdict(TYPE_VERDICT, Action.Default, Priority.Default, msg, fields);
}

/** observe records a fact for behavior detection, not an alert; key names it. */
export function observe(key: string, fields: Field[] = []): Verdict {
  return new Verdict(TYPE_OBSERVATION, Action.Default, Priority.Default, key, fields);
}

class Registered {
  constructor(public rule: Rule, public fn: (e: Event) => Verdict) {}
}

// A Wasm module is one instance of this state by nature; it is written by
// the module's top-level register calls (the start function) and then read
// by the exports.
const rules = new Array<Registered>();
let moduleName = "assemblyscript-rules";
let moduleVersion = "";

/** module names the module (default "assemblyscript-rules"). Call it at top level. */
export function module(name: string, version: string = ""): void {
  moduleName = name;
  moduleVersion = version;
}

/** register adds a rule; the order of calls is the rule order (the index verdicts carry). */
export function register(rule: Rule, fn: (e: Event) => Verdict): void {
  rules.push(new Registered(rule, fn));
}

@external("vigil", "log")
declare function hostLog(level: u32, ptr: usize, len: u32): void;

export const DEBUG: u32 = 0, INFO: u32 = 1, WARN: u32 = 2, ERROR: u32 = 3;

/** log writes a line to the guard's log (cut to 1 KiB and rate-limited by the host). */
export function log(level: u32, msg: string): void {
  const b = String.UTF8.encode(msg);
  hostLog(level, changetype<usize>(b), <u32>b.byteLength);
}

function jsonString(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22 || c == 0x5c) out += "\\" + String.fromCharCode(c);
    else if (c < 0x20) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

/** metaJSON returns the metadata JSON of ABI.md. */
export function metaJSON(): string {
  let b = `{"abi":1,"module":${jsonString(moduleName)}`;
  if (moduleVersion.length > 0) b += `,"version":${jsonString(moduleVersion)}`;
  b += `,"rules":[`;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i].rule;
    if (i > 0) b += ",";
    b += `{"name":${jsonString(r.name)}`;
    if (r.version.length > 0) b += `,"version":${jsonString(r.version)}`;
    if (r.description.length > 0) b += `,"description":${jsonString(r.description)}`;
    b += `,"priority":${jsonString(priorityName(r.priority))}`;
    if (r.action == Action.Kill) b += `,"action":"kill"`;
    else if (r.action == Action.Block) b += `,"action":"block"`;
    b += `,"kinds":[`;
    for (let j = 0; j < r.kinds.length; j++) {
      if (j > 0) b += ",";
      b += jsonString(kindName(r.kinds[j]));
    }
    b += `],"tags":[`;
    for (let j = 0; j < r.tags.length; j++) {
      if (j > 0) b += ",";
      b += jsonString(r.tags[j]);
    }
    b += "]}";
  }
  return b + "]}";
}

// Buffers shared with the host live outside the GC heap (heap.alloc), so
// the collector never moves or frees them under the host.
let metaPtr: usize = 0, metaLen: i32 = 0;
let inPtr: usize = 0, inCap: u32 = 0;
let outPtr: usize = 0, outCap: u32 = 0, outLen: u32 = 0;
const MAX_OUT: u32 = 1 << 20;
const event = new Event();

function pack(ptr: usize, len: u32): u64 { return (<u64>len << 32) | <u64>ptr; }

/** @internal the vigil_meta export. */
export function abiMeta(): u64 {
  if (metaPtr == 0) {
    const b = String.UTF8.encode(metaJSON());
    metaLen = b.byteLength;
    metaPtr = heap.alloc(<usize>metaLen);
    memory.copy(metaPtr, changetype<usize>(b), <usize>metaLen);
  }
  return pack(metaPtr, <u32>metaLen);
}

/** @internal the vigil_input export. */
export function abiInput(size: u32): usize {
  if (size <= inCap && inPtr != 0) return inPtr;
  if (inPtr != 0) heap.free(inPtr);
  if (size == 0) size = 1;
  inPtr = heap.alloc(<usize>size);
  inCap = size;
  return inPtr;
}

function reserve(n: u32): bool {
  if (outLen + n > MAX_OUT) return false;
  if (outLen + n > outCap) {
    let c = outCap == 0 ? <u32>4096 : outCap;
    while (c < outLen + n) c <<= 1;
    if (c > MAX_OUT) c = MAX_OUT;
    outPtr = outPtr == 0 ? heap.alloc(<usize>c) : heap.realloc(outPtr, <usize>c);
    outCap = c;
  }
  return true;
}

function appendRecord(v: Verdict, ev: u32, rule: u32): bool {
  let ml = <u32>String.UTF8.byteLength(v.message);
  const nf = <u32>min(v.fields.length, 16);
  if (ml > 1024) ml = 1024;
  const rl = 14 + 2 * nf + ml;
  if (!reserve(rl)) return false;
  const p = outPtr + <usize>outLen;
  const obs = v.type == TYPE_OBSERVATION;
  store<u16>(p, <u16>rl);
  store<u8>(p, v.type, 2);
  store<u8>(p, obs ? 0 : <u8>v.action, 3);
  store<u32>(p, ev, 4);
  store<u16>(p, <u16>rule, 8);
  store<u8>(p, obs ? 0 : <u8>v.priority, 10);
  store<u8>(p, <u8>nf, 11);
  store<u16>(p, <u16>ml, 12);
  for (let i: u32 = 0; i < nf; i++) store<u16>(p + 14 + 2 * <usize>i, <u16>v.fields[i]);
  if (ml > 0) {
    const b = String.UTF8.encode(v.message);
    memory.copy(p + 14 + 2 * <usize>nf, changetype<usize>(b), <usize>ml);
  }
  outLen += rl;
  return true;
}

/** @internal the vigil_evaluate export. */
export function abiEvaluate(ptr: usize, len: u32, n: u32): u64 {
  // The host writes only into the buffer vigil_input returned; anything
  // else is a host bug, answered with "no verdicts".
  if (inPtr == 0 || ptr != inPtr || len > inCap) return 0;
  outLen = 0;
  reserve(4);
  outLen = 4;
  let count: u32 = 0, dropped: u32 = 0;
  let off: u32 = 0;
  for (let i: u32 = 0; i < n && off + 8 <= len; i++) {
    const total = load<u32>(ptr + <usize>off);
    if (total < 8 || total > len - off) break;
    event.ptr = ptr + <usize>off;
    event.len = <i32>total;
    event.index = <i32>i;
    const kind = event.kind();
    for (let ri = 0; ri < rules.length; ri++) {
      const r = rules[ri];
      if (!r.rule.kinds.includes(kind)) continue;
      const fn = r.fn;
      const v = fn(event);
      if (v.type == TYPE_NONE) continue;
      if (appendRecord(v, i, <u32>ri)) count++;
      else dropped++;
    }
    off += total;
  }
  if (dropped > 0) log(WARN, "vigil: output buffer full, verdicts dropped");
  if (count == 0) return 0;
  store<u32>(outPtr, count);
  return pack(outPtr, outLen);
}
