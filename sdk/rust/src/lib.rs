//! The Rust SDK for Vigil rule modules (wasm-rules/ABI.md, version 1).
//!
//! A rule is metadata plus one function from an event to a verdict. Declare
//! the module once, as a static, and let `vigil::export!` generate the ABI
//! exports:
//!
//! ```ignore
//! use vigil::{Event, Field, Kind, Priority, Rule, Verdict};
//!
//! static MODULE: vigil::Module = vigil::Module {
//!     name: "my-rules",
//!     version: "1.0.0",
//!     rules: &[Rule {
//!         name: "Terminal shell in container",
//!         priority: Priority::Warning,
//!         kinds: &[Kind::EXEC],
//!         eval: shell,
//!         ..Rule::DEFAULT
//!     }],
//! };
//! vigil::export!(MODULE);
//!
//! fn shell(e: &Event) -> Verdict {
//!     if e.container_id() != "" && matches!(e.proc_name(), "bash" | "sh") {
//!         return vigil::fire("shell in container", &[Field::PROC_NAME]);
//!     }
//!     vigil::allow()
//! }
//! ```
//!
//! Build with Debian's rustc (no cargo, no crates.io): the SDK as an rlib,
//! then the rule as a cdylib linked against it (`vigil rules build DIR` runs
//! both steps; see README.md).
//!
//! The SDK checks each rule's kinds before calling it, so a rule only sees
//! the kinds it subscribed to. Strings returned by getters borrow the event
//! and live only for the rule call.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod fields_gen;

/// The rule ABI version this SDK implements.
pub const ABI_VERSION: i32 = 1;

/// A field's stable wire id; constants (`Field::PROC_NAME`, ...) are
/// generated from the registry into fields_gen.rs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Field(pub u16);

/// An event kind; constants (`Kind::EXEC`, ...) are generated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Kind(pub u16);

/// Falco-style severity, most severe first. `Default` means "the rule's own
/// priority" in a verdict.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Priority {
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

impl Priority {
    /// The name the metadata JSON uses.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
            // A rule without a priority is a Warning, as in the Go SDK.
            Priority::Default => "Warning",
        }
    }
}

/// What a verdict asks the guard to do. `Default` means "the rule's own
/// action".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Action {
    Alert = 1,
    Kill = 2,
    Block = 3,
    Default = 255,
}

/// One rule's metadata (its defaults) and its evaluate function.
pub struct Rule {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    pub priority: Priority,
    pub action: Action,
    pub kinds: &'static [Kind],
    pub tags: &'static [&'static str],
    pub eval: fn(&Event) -> Verdict,
}

impl Rule {
    /// Defaults for `..Rule::DEFAULT`; a rule must still set name, kinds and
    /// eval.
    pub const DEFAULT: Rule = Rule {
        name: "",
        version: "",
        description: "",
        priority: Priority::Warning,
        action: Action::Alert,
        kinds: &[],
        tags: &[],
        eval: |_| allow(),
    };
}

/// A rule module: its name, version and rules. The index of a rule in
/// `rules` is how verdicts name it.
pub struct Module {
    pub name: &'static str,
    pub version: &'static str,
    pub rules: &'static [Rule],
}

/// What a rule returns for one event. `allow()` emits nothing.
pub struct Verdict {
    typ: u8,
    action: Action,
    priority: Priority,
    msg: Cow<'static, str>,
    fields: &'static [Field],
}

/// The verdict that emits nothing.
pub fn allow() -> Verdict {
    Verdict { typ: 0, action: Action::Default, priority: Priority::Default, msg: Cow::Borrowed(""), fields: &[] }
}

fn verdict(action: Action, priority: Priority, msg: impl Into<Cow<'static, str>>, fields: &'static [Field]) -> Verdict {
    Verdict { typ: 1, action, priority, msg: msg.into(), fields }
}

/// Reports the event. The host copies `fields` from the event into the
/// alert (at most 16).
pub fn alert(priority: Priority, msg: impl Into<Cow<'static, str>>, fields: &'static [Field]) -> Verdict {
    verdict(Action::Alert, priority, msg, fields)
}

/// Asks the guard to kill the acting process (audit mode records it).
pub fn kill(priority: Priority, msg: impl Into<Cow<'static, str>>, fields: &'static [Field]) -> Verdict {
    verdict(Action::Kill, priority, msg, fields)
}

/// Asks the guard to deny the operation (EPERM, or admission denial).
pub fn block(priority: Priority, msg: impl Into<Cow<'static, str>>, fields: &'static [Field]) -> Verdict {
    verdict(Action::Block, priority, msg, fields)
}

/// Reports the event with the rule's default action and priority.
pub fn fire(msg: impl Into<Cow<'static, str>>, fields: &'static [Field]) -> Verdict {
    verdict(Action::Default, Priority::Default, msg, fields)
}

/// Records a fact for behavior detection, not an alert; `key` names it.
pub fn observe(key: impl Into<Cow<'static, str>>, fields: &'static [Field]) -> Verdict {
    Verdict { typ: 2, action: Action::Default, priority: Priority::Default, msg: key.into(), fields }
}

impl Verdict {
    /// Whether this verdict emits nothing.
    pub fn is_allow(&self) -> bool {
        self.typ == 0
    }
}

/// One wire-format event (guard/event/wire.go). Getters return the zero
/// value for absent fields, as the wire format omits zero values.
pub struct Event<'a> {
    b: &'a [u8],
    kind: Kind,
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

impl<'a> Event<'a> {
    /// Wraps one wire event (header included); None when the header is
    /// malformed.
    pub fn parse(b: &'a [u8]) -> Option<Event<'a>> {
        if b.len() < 8 || le32(b, 0) as usize != b.len() {
            return None;
        }
        Some(Event { b, kind: Kind(le16(b, 4)) })
    }

    /// The event's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The raw value of field `id` at element index `idx` (0 except for
    /// repeated objects). Records are sorted, so the walk stops early.
    pub fn raw(&self, id: Field, idx: u16) -> Option<&'a [u8]> {
        let b = self.b;
        let n = le16(b, 6) as usize;
        let mut off = 8;
        for _ in 0..n {
            if off + 8 > b.len() {
                return None;
            }
            let (fid, fidx, l) = (le16(b, off), le16(b, off + 2), le32(b, off + 4) as usize);
            if l > b.len() - off - 8 || fid > id.0 || (fid == id.0 && fidx > idx) {
                return None;
            }
            if fid == id.0 && fidx == idx {
                return Some(&b[off + 8..off + 8 + l]);
            }
            off += 8 + l;
        }
        None
    }

    /// Whether the field is present (non-zero).
    pub fn has(&self, id: Field) -> bool {
        self.raw(id, 0).is_some()
    }

    /// An unsigned integer field.
    pub fn u64(&self, id: Field) -> u64 {
        match self.raw(id, 0) {
            Some(v) if v.len() == 8 => u64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]),
            _ => 0,
        }
    }

    /// A signed integer field.
    pub fn i64(&self, id: Field) -> i64 {
        self.u64(id) as i64
    }

    /// A boolean field.
    pub fn bool(&self, id: Field) -> bool {
        matches!(self.raw(id, 0), Some([1]))
    }

    /// A string field. Kernel strings need not be UTF-8; an invalid string
    /// reads as its longest valid prefix (str_bytes has the raw bytes).
    pub fn str(&self, id: Field) -> &'a str {
        to_str(self.str_bytes(id))
    }

    /// A string field's raw bytes.
    pub fn str_bytes(&self, id: Field) -> &'a [u8] {
        self.raw(id, 0).unwrap_or(&[])
    }

    /// An address field (4 bytes IPv4, 16 bytes IPv6).
    pub fn addr(&self, id: Field) -> Option<IpAddr> {
        match self.raw(id, 0) {
            Some(v) if v.len() == 4 => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
            Some(v) if v.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(v);
                Some(IpAddr::V6(Ipv6Addr::from(a)))
            }
            _ => None,
        }
    }

    /// A string-list field, iterated without allocating.
    pub fn list(&self, id: Field) -> StrList<'a> {
        StrList { b: self.raw(id, 0).unwrap_or(&[]) }
    }
}

fn to_str(b: &[u8]) -> &str {
    match std::str::from_utf8(b) {
        Ok(s) => s,
        // Safe: valid_up_to bytes were just validated.
        Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// A string-list value: `u16 len, bytes` repeated.
#[derive(Clone)]
pub struct StrList<'a> {
    b: &'a [u8],
}

impl<'a> Iterator for StrList<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.b.len() < 2 {
            return None;
        }
        let n = le16(self.b, 0) as usize;
        if n > self.b.len() - 2 {
            self.b = &[];
            return None;
        }
        let s = &self.b[2..2 + n];
        self.b = &self.b[2 + n..];
        Some(to_str(s))
    }
}

impl<'a> StrList<'a> {
    /// Whether some item equals s.
    pub fn contains(&self, s: &str) -> bool {
        self.clone().any(|x| x == s)
    }
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "vigil")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: u32, ptr: *const u8, len: u32);
}

/// Log levels for `log`.
pub const DEBUG: u32 = 0;
pub const INFO: u32 = 1;
pub const WARN: u32 = 2;
pub const ERROR: u32 = 3;

/// Writes a line to the guard's log (cut to 1 KiB and rate-limited by the
/// host). Outside Wasm (unit tests) it prints to stderr.
pub fn log(level: u32, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        host_log(level, msg.as_ptr(), msg.len() as u32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("vigil log {}: {}", level, msg);
}

/// The largest output buffer the ABI accepts.
const MAX_OUT: usize = 1 << 20;

/// The guest's state between ABI calls. An instance is used by one host
/// thread at a time (ABI.md), so the exports own it exclusively.
#[doc(hidden)]
pub struct State {
    meta: Vec<u8>,
    input: Vec<u8>,
    out: Vec<u8>,
}

impl State {
    pub const fn new() -> State {
        State { meta: Vec::new(), input: Vec::new(), out: Vec::new() }
    }

    /// vigil_meta: the metadata JSON, built once.
    pub fn meta(&mut self, m: &Module) -> u64 {
        if self.meta.is_empty() {
            self.meta = meta_json(m).into_bytes();
        }
        pack(self.meta.as_ptr(), self.meta.len())
    }

    /// vigil_input: a buffer of at least size bytes, valid until the next
    /// call.
    pub fn input(&mut self, size: u32) -> *mut u8 {
        let size = size.max(1) as usize;
        if self.input.len() < size {
            self.input = Vec::new();
            if self.input.try_reserve_exact(size).is_err() {
                return std::ptr::null_mut();
            }
            self.input.resize(size, 0);
        }
        self.input.as_mut_ptr()
    }

    /// vigil_evaluate on the input buffer.
    pub fn evaluate(&mut self, m: &Module, ptr: *const u8, len: u32, n: u32) -> u64 {
        // The host writes only into the buffer vigil_input returned; anything
        // else is a host bug, answered with "no verdicts".
        if self.input.is_empty() || ptr != self.input.as_ptr() || len as usize > self.input.len() {
            return 0;
        }
        let mut out = std::mem::take(&mut self.out);
        let count = evaluate_into(m, &self.input[..len as usize], n, &mut out);
        self.out = out;
        if count == 0 {
            return 0;
        }
        pack(self.out.as_ptr(), self.out.len())
    }
}

fn pack(p: *const u8, len: usize) -> u64 {
    (len as u64) << 32 | (p as usize as u64)
}

/// Runs every rule over a batch of `n` wire events and writes the output
/// buffer of ABI.md into out; returns the number of records. Exposed so
/// native unit tests can run the same code as the Wasm exports.
pub fn evaluate_into(m: &Module, input: &[u8], n: u32, out: &mut Vec<u8>) -> u32 {
    out.clear();
    out.extend_from_slice(&[0, 0, 0, 0]);
    let (mut count, mut dropped) = (0u32, 0u32);
    let mut off = 0usize;
    for i in 0..n {
        if off + 8 > input.len() {
            break;
        }
        let total = le32(input, off) as usize;
        if total < 8 || total > input.len() - off {
            break;
        }
        let e = Event { b: &input[off..off + total], kind: Kind(le16(input, off + 4)) };
        for (ri, r) in m.rules.iter().enumerate() {
            if !r.kinds.contains(&e.kind) {
                continue;
            }
            let v = (r.eval)(&e);
            if v.typ == 0 {
                continue;
            }
            if append_record(out, &v, i, ri as u16) {
                count += 1;
            } else {
                dropped += 1;
            }
        }
        off += total;
    }
    if dropped > 0 {
        log(WARN, "vigil: output buffer full, verdicts dropped");
    }
    out[..4].copy_from_slice(&count.to_le_bytes());
    count
}

fn append_record(out: &mut Vec<u8>, v: &Verdict, ev: u32, rule: u16) -> bool {
    let mut msg = v.msg.as_bytes();
    if msg.len() > 1024 {
        msg = &msg[..1024];
    }
    let fields = &v.fields[..v.fields.len().min(16)];
    let rl = 14 + 2 * fields.len() + msg.len();
    if out.len() + rl > MAX_OUT {
        return false;
    }
    let (action, prio) = if v.typ == 2 { (0, 0) } else { (v.action as u8, v.priority as u8) };
    out.extend_from_slice(&(rl as u16).to_le_bytes());
    out.push(v.typ);
    out.push(action);
    out.extend_from_slice(&ev.to_le_bytes());
    out.extend_from_slice(&rule.to_le_bytes());
    out.push(prio);
    out.push(fields.len() as u8);
    out.extend_from_slice(&(msg.len() as u16).to_le_bytes());
    for f in fields {
        out.extend_from_slice(&f.0.to_le_bytes());
    }
    out.extend_from_slice(msg);
    true
}

/// The metadata JSON of ABI.md for m.
pub fn meta_json(m: &Module) -> String {
    let mut b = String::from(r#"{"abi":1,"module":"#);
    json_str(&mut b, m.name);
    if !m.version.is_empty() {
        b.push_str(r#","version":"#);
        json_str(&mut b, m.version);
    }
    b.push_str(r#","rules":["#);
    for (i, r) in m.rules.iter().enumerate() {
        if i > 0 {
            b.push(',');
        }
        b.push_str(r#"{"name":"#);
        json_str(&mut b, r.name);
        if !r.version.is_empty() {
            b.push_str(r#","version":"#);
            json_str(&mut b, r.version);
        }
        if !r.description.is_empty() {
            b.push_str(r#","description":"#);
            json_str(&mut b, r.description);
        }
        b.push_str(r#","priority":"#);
        json_str(&mut b, r.priority.name());
        match r.action {
            Action::Kill => b.push_str(r#","action":"kill""#),
            Action::Block => b.push_str(r#","action":"block""#),
            _ => {}
        }
        b.push_str(r#","kinds":["#);
        for (j, k) in r.kinds.iter().enumerate() {
            if j > 0 {
                b.push(',');
            }
            json_str(&mut b, k.name());
        }
        b.push_str(r#"],"tags":["#);
        for (j, t) in r.tags.iter().enumerate() {
            if j > 0 {
                b.push(',');
            }
            json_str(&mut b, t);
        }
        b.push_str("]}");
    }
    b.push_str("]}");
    b
}

fn json_str(b: &mut String, s: &str) {
    b.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                b.push('\\');
                b.push(c);
            }
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                b.push_str("\\u00");
                b.push(HEX[(c as usize) >> 4] as char);
                b.push(HEX[(c as usize) & 15] as char);
            }
            c => b.push(c),
        }
    }
    b.push('"');
}

/// Generates the ABI exports (vigil_abi_version, vigil_meta, vigil_input,
/// vigil_evaluate) for a `static` Module. Use it once, in the rule crate.
#[macro_export]
macro_rules! export {
    ($module:path) => {
        static mut VIGIL_STATE: $crate::State = $crate::State::new();

        #[no_mangle]
        pub extern "C" fn vigil_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn vigil_meta() -> u64 {
            // Safety: one host thread per instance (ABI.md).
            unsafe { VIGIL_STATE.meta(&$module) }
        }

        #[no_mangle]
        pub extern "C" fn vigil_input(size: u32) -> *mut u8 {
            unsafe { VIGIL_STATE.input(size) }
        }

        #[no_mangle]
        pub extern "C" fn vigil_evaluate(ptr: *const u8, len: u32, n: u32) -> u64 {
            unsafe { VIGIL_STATE.evaluate(&$module, ptr, len, n) }
        }
    };
}

// Native unit tests: `rustc --edition=2021 --test sdk/rust/src/lib.rs`
// (guard/rules/rulebuild runs them). The Wasm exports share this code.
#[cfg(test)]
mod tests {
    use super::*;

    // wire builds one event from (field, index, value) records, sorted.
    fn wire(kind: u16, recs: &[(u16, u16, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b[4..6].copy_from_slice(&kind.to_le_bytes());
        b[6..8].copy_from_slice(&(recs.len() as u16).to_le_bytes());
        for (id, idx, v) in recs {
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&idx.to_le_bytes());
            b.extend_from_slice(&(v.len() as u32).to_le_bytes());
            b.extend_from_slice(v);
        }
        let n = b.len() as u32;
        b[0..4].copy_from_slice(&n.to_le_bytes());
        b
    }

    fn shell(e: &Event) -> Verdict {
        if e.proc_name() == "bash" {
            return alert(Priority::Critical, "bash \"quoted\"", &[Field::PROC_NAME]);
        }
        allow()
    }
    fn every(_: &Event) -> Verdict {
        observe("seen", &[])
    }
    fn long(_: &Event) -> Verdict {
        const MANY: &[Field] = &[Field::PROC_NAME; 20];
        fire("x".repeat(2000), MANY)
    }

    static M: Module = Module {
        name: "t\"est",
        version: "1",
        rules: &[
            Rule { name: "shell", kinds: &[Kind::EXEC], eval: shell, ..Rule::DEFAULT },
            Rule { name: "every", kinds: &[Kind::EXEC, Kind::OPEN], action: Action::Kill, eval: every, ..Rule::DEFAULT },
            Rule { name: "long", kinds: &[Kind::CONNECT], eval: long, ..Rule::DEFAULT },
        ],
    };

    #[test]
    fn metadata() {
        let j = meta_json(&M);
        assert!(j.starts_with(r#"{"abi":1,"module":"t\"est","version":"1","rules":[{"name":"shell","priority":"Warning","kinds":["exec"],"tags":[]}"#), "{}", j);
        assert!(j.contains(r#"{"name":"every","priority":"Warning","action":"kill","kinds":["exec","open"],"tags":[]}"#), "{}", j);
    }

    #[test]
    fn getters() {
        let args: &[u8] = &[2, 0, b's', b'h', 3, 0, b'-', b'-', b'x'];
        let b = wire(1, &[
            (13, 0, b"bash"),
            (15, 0, args),
            (22, 0, &[1]),
            (42, 0, &1000u64.to_le_bytes()),
            (125, 0, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            (141, 0, &(-1i64).to_le_bytes()),
        ]);
        let e = Event::parse(&b).unwrap();
        assert_eq!(e.kind(), Kind::EXEC);
        assert_eq!(e.proc_name(), "bash");
        assert_eq!(e.proc_args().collect::<Vec<_>>(), vec!["sh", "--x"]);
        assert!(e.proc_args().contains("--x") && !e.proc_args().contains("--"));
        assert!(e.proc_exe_memfd());
        assert_eq!(e.user_euid(), 1000);
        assert_eq!(e.priv_id0(), -1);
        assert_eq!(e.net_dst_addr(), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        // Absent fields read as zero values.
        assert_eq!(e.container_id(), "");
        assert_eq!(e.user_uid(), 0);
        assert_eq!(e.net_src_addr(), None);
        assert_eq!(e.proc_ancestors().count(), 0);
    }

    #[test]
    fn invalid_utf8_reads_as_prefix() {
        let b = wire(1, &[(13, 0, &[b'o', b'k', 0xff, b'x'])]);
        let e = Event::parse(&b).unwrap();
        assert_eq!(e.proc_name(), "ok");
        assert_eq!(e.str_bytes(Field::PROC_NAME), &[b'o', b'k', 0xff, b'x']);
    }

    #[test]
    fn output_records() {
        let mut input = wire(1, &[(13, 0, b"bash")]);
        input.extend(wire(10, &[]));
        input.extend(wire(20, &[]));
        input.extend(wire(99, &[]));
        let mut out = Vec::new();
        assert_eq!(evaluate_into(&M, &input, 4, &mut out), 4);
        assert_eq!(&out[..4], &4u32.to_le_bytes());
        // Event 0: shell (alert, Critical, one field) then every (observation).
        let msg = b"bash \"quoted\"";
        let rl = 14 + 2 + msg.len();
        assert_eq!(le16(&out, 4) as usize, rl);
        assert_eq!(&out[6..18], &[1, 1, 0, 0, 0, 0, 0, 0, 2, 1, msg.len() as u8, 0]);
        assert_eq!(le16(&out, 18), 13);
        assert_eq!(&out[20..20 + msg.len()], msg);
        let r2 = 4 + rl;
        assert_eq!(&out[r2..r2 + 14], &[18, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0]);
        // Event 1 (open): every; event 2 (connect): long, capped; kind 99: nothing.
        let r3 = r2 + 18;
        assert_eq!(out[r3 + 4], 1);
        let r4 = r3 + 18;
        assert_eq!(le32(&out, r4 + 4), 2);
        assert_eq!(out[r4 + 11], 16);
        assert_eq!(le16(&out, r4 + 12), 1024);
        assert_eq!(le16(&out, r4) as usize, 14 + 32 + 1024);
        assert_eq!(out.len(), r4 + 14 + 32 + 1024);
    }

    #[test]
    fn malformed_batches_do_not_panic() {
        let good = wire(1, &[(13, 0, b"bash"), (15, 0, &[200, 0, b'a'])]);
        let mut out = Vec::new();
        for cut in 0..good.len() {
            evaluate_into(&M, &good[..cut], 3, &mut out);
        }
        // A record length past the end, and a total length lying both ways.
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(evaluate_into(&M, &bad, 1, &mut out), 1); // "every" still fires
        let mut lie = good.clone();
        lie[0..4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(evaluate_into(&M, &lie, 1, &mut out), 0);
        lie[0..4].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(evaluate_into(&M, &lie, 1, &mut out), 0);
        // A string list whose item overruns reads as empty.
        let e = Event::parse(&good).unwrap();
        assert_eq!(e.proc_args().count(), 0);
        assert!(Event::parse(&good[..7]).is_none());
    }
}
