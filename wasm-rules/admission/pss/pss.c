/*
 * Vigil's built-in admission pack: the Kubernetes Pod Security Standards
 * (baseline and restricted, v1.37) over the flattened admission event
 * (kind admission, fields 1000-1999, guard/event/admission.go), in C.
 *
 * It is a line-by-line port of webhook/pss (the native Go checks, which stay
 * the oracle: TestPSACorpusThroughWasm and TestCPackMatchesNative hold this
 * module to them) and answers exactly like the Go-built pack it replaced
 * (wasm-rules/admission/pss-go): the same module name, rule names, tags and
 * verdict text. It exists because the Go guest cost ~150 us of wazero time
 * per review; this one costs a few us.
 *
 * Two rules, one per level; one call answers both (vigil_rules runs once per
 * event and emits a record for each rule), so the pod is walked once and
 * every check runs once for both levels (as pss.CheckLevels does).
 *
 *   clean pod      -> observation "pass" (the webhook requires one record per
 *                     level rule per event: silence would be a rule failure)
 *   violating pod  -> block verdict, one line per violated check:
 *                     <check id>: <reason> (<detail>)
 *                     at most 1024 bytes; lines that do not fit become a final
 *                     "truncated: N more violations" line
 *                     (bytes that are not UTF-8 become U+FFFD, as they
 *                     would when the webhook encodes the native text)
 *   unreadable     -> block verdict "decode: decode admission event: <why>"
 *
 * # Notes
 *
 * Names are quoted like Go's strconv.Quote. For valid UTF-8 outside ASCII,
 * Go escapes every rune unicode.IsPrint rejects; this port escapes the
 * assigned non-printable ones (C1 controls, format characters, spaces other
 * than U+0020, line/paragraph separators, private use, noncharacters) but
 * passes unassigned code points through. Kubernetes names are DNS labels, so
 * this never shows on a valid object.
 *
 * Memory: a per-event bump arena grown with memory.grow (the SDK has no
 * allocator); running out of memory traps, which the host treats as a rule
 * failure (--admission-rule-failure).
 */
#include "vigil.h"

enum { R_BASELINE, R_RESTRICTED };

#define RULE(level)                                                                                                    \
	"{\"name\":\"pod-security-" level "\",\"version\":\"1.37.0\",\"priority\":\"Error\",\"action\":\"block\","   \
	"\"kinds\":[\"admission\"],\"tags\":[\"pss\",\"pss-level:" level "\"],"                                        \
	"\"description\":\"Kubernetes Pod Security Standards, " level                                                   \
	" level (checks of k8s.io/pod-security-admission v1.37)\"}"

VIGIL_META("{\"abi\":1,\"module\":\"pod-security\",\"version\":\"1.37.0\","
	   "\"description\":\"Kubernetes Pod Security Standards (baseline, restricted) as admission rules.\","
	   "\"rules\":[" RULE("baseline") "," RULE("restricted") "]}");

typedef vigil_u32 u32;
typedef vigil_u8 u8;
typedef vigil_str_t S;

/* ---- arena ----------------------------------------------------------------- */

static u8 *arena;
static u32 arena_cap, arena_off;

/* alloc returns n zeroed bytes valid until the next event. A region that is
 * too small is abandoned for a bigger one (memory only grows in Wasm), so
 * earlier pointers stay valid; the waste is bounded by the doubling. */
static void *alloc(u32 n) {
	n = (n + 7) & ~7u;
	if (n > arena_cap - arena_off) {
		u32 want = arena_cap * 2;
		if (want < n)
			want = n;
		if (want < 65536)
			want = 65536;
		u32 pages = (want + 65535) / 65536;
		int old = __builtin_wasm_memory_grow(0, pages);
		if (old < 0)
			__builtin_trap();
		arena = (u8 *)((__SIZE_TYPE__)old * 65536);
		arena_cap = pages * 65536;
		arena_off = 0;
	}
	void *p = arena + arena_off;
	arena_off += n;
	__builtin_memset(p, 0, n);
	return p;
}

/* ---- string builder -------------------------------------------------------- */

typedef struct {
	char *p;
	u32 n, cap;
} sb;

static void sb_reserve(sb *b, u32 extra) {
	if (extra <= b->cap - b->n)
		return;
	u32 c = b->cap * 2;
	if (c < b->n + extra)
		c = b->n + extra;
	if (c < 256)
		c = 256;
	char *p = alloc(c);
	if (b->n)
		__builtin_memcpy(p, b->p, b->n);
	b->p = p;
	b->cap = c;
}

static void sb_put(sb *b, const char *s, u32 n) {
	sb_reserve(b, n);
	if (n)
		__builtin_memcpy(b->p + b->n, s, n);
	b->n += n;
}
#define sb_lit(b, lit) sb_put((b), (lit), sizeof(lit) - 1)
static void sb_str(sb *b, S s) { sb_put(b, s.p, s.n); }
static void sb_byte(sb *b, char c) {
	sb_reserve(b, 1);
	b->p[b->n++] = c;
}
static S sb_done(sb *b) {
	S s = {b->p, b->n};
	return s;
}

static void sb_uint(sb *b, u32 v) {
	char d[10];
	int i = 10;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sb_put(b, d + i, (u32)(10 - i));
}

static const char hexdigits[] = "0123456789abcdef";

/* decode_rune mirrors utf8.DecodeRune: the rune and its width, or width 1
 * and -1 for an invalid or truncated sequence. */
static int decode_rune(const u8 *p, u32 n, u32 *width) {
	u8 c = p[0];
	int r, need;
	u8 lo = 0x80, hi = 0xbf;
	*width = 1;
	if (c < 0x80)
		return c;
	if (c < 0xc2)
		return -1;
	if (c < 0xe0) {
		need = 1, r = c & 0x1f;
	} else if (c < 0xf0) {
		need = 2, r = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;
		if (c == 0xed)
			hi = 0x9f;
	} else if (c < 0xf5) {
		need = 3, r = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
	} else {
		return -1;
	}
	if ((u32)need >= n)
		return -1;
	for (int i = 1; i <= need; i++) {
		u8 x = p[i];
		if (i == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xbf))
			return -1;
		r = r << 6 | (x & 0x3f);
	}
	*width = (u32)need + 1;
	return r;
}

/* printable approximates unicode.IsPrint for r >= 0x80 (see # Notes above). */
static int printable(int r) {
	if (r <= 0xa0 || r == 0xad)
		return 0; /* C1 controls, NBSP (Zs), soft hyphen (Cf) */
	if ((r >= 0x600 && r <= 0x605) || r == 0x61c || r == 0x6dd || r == 0x70f || r == 0x890 || r == 0x891 ||
	    r == 0x8e2 || r == 0x180e || r == 0x1680)
		return 0;
	if ((r >= 0x2000 && r <= 0x200f) || (r >= 0x2028 && r <= 0x202f) || (r >= 0x205f && r <= 0x2064) ||
	    (r >= 0x2066 && r <= 0x206f) || r == 0x3000 || r == 0xfeff || (r >= 0xfff9 && r <= 0xfffb))
		return 0;
	if ((r >= 0xe000 && r <= 0xf8ff) || (r >= 0xfdd0 && r <= 0xfdef) || (r & 0xfffe) == 0xfffe)
		return 0; /* private use, noncharacters */
	if (r == 0x110bd || r == 0x110cd || (r >= 0x13430 && r <= 0x1343f) || (r >= 0x1bca0 && r <= 0x1bca3) ||
	    (r >= 0x1d173 && r <= 0x1d17a) || r == 0xe0001 || (r >= 0xe0020 && r <= 0xe007f) || r >= 0xf0000)
		return 0;
	return 1;
}

/* sb_quote appends s as strconv.Quote renders it. */
static void sb_quote(sb *b, S s) {
	sb_reserve(b, 4 * s.n + 2); /* the worst case: \xhh for every byte */
	char *o = b->p + b->n;
	*o++ = '"';
	for (u32 i = 0; i < s.n;) {
		u8 c = (u8)s.p[i];
		if (c < 0x80) {
			i++;
			if (c == '"' || c == '\\') {
				*o++ = '\\', *o++ = (char)c;
			} else if (c >= 0x20 && c < 0x7f) {
				*o++ = (char)c;
			} else {
				char e = 0;
				switch (c) {
				case 7: e = 'a'; break;
				case 8: e = 'b'; break;
				case 12: e = 'f'; break;
				case 10: e = 'n'; break;
				case 13: e = 'r'; break;
				case 9: e = 't'; break;
				case 11: e = 'v'; break;
				}
				*o++ = '\\';
				if (e) {
					*o++ = e;
				} else {
					*o++ = 'x', *o++ = hexdigits[c >> 4], *o++ = hexdigits[c & 15];
				}
			}
			continue;
		}
		u32 w;
		int r = decode_rune((const u8 *)s.p + i, s.n - i, &w);
		if (r < 0) {
			*o++ = '\\', *o++ = 'x', *o++ = hexdigits[c >> 4], *o++ = hexdigits[c & 15];
		} else if (printable(r)) {
			__builtin_memcpy(o, s.p + i, w);
			o += w;
		} else {
			int digits = r < 0x10000 ? 4 : 8;
			*o++ = '\\', *o++ = r < 0x10000 ? 'u' : 'U';
			for (int k = digits - 1; k >= 0; k--)
				*o++ = hexdigits[(r >> (4 * k)) & 15];
		}
		i += w;
	}
	*o++ = '"';
	b->n = (u32)(o - b->p);
}

/* ---- string sets and lists ------------------------------------------------- */

static int str_cmp(S a, S b) {
	u32 n = a.n < b.n ? a.n : b.n;
	for (u32 i = 0; i < n; i++)
		if (a.p[i] != b.p[i])
			return (u8)a.p[i] < (u8)b.p[i] ? -1 : 1;
	return a.n < b.n ? -1 : a.n > b.n;
}
static int str_eq(S a, S b) { return a.n == b.n && str_cmp(a, b) == 0; }

/* strs is a list of strings; as a set it is sorted and deduplicated by
 * strs_set (Go's set.list()). */
typedef struct {
	S *v;
	u32 n, cap;
} strs;

static void strs_add(strs *l, S s) {
	if (l->n == l->cap) {
		u32 c = l->cap ? l->cap * 2 : 8;
		S *v = alloc(c * sizeof(S));
		if (l->n)
			__builtin_memcpy(v, l->v, l->n * sizeof(S));
		l->v = v, l->cap = c;
	}
	l->v[l->n++] = s;
}

static void sift(S *v, u32 i, u32 n) {
	for (;;) {
		u32 c = 2 * i + 1;
		if (c >= n)
			return;
		if (c + 1 < n && str_cmp(v[c], v[c + 1]) < 0)
			c++;
		if (str_cmp(v[i], v[c]) >= 0)
			return;
		S t = v[i];
		v[i] = v[c], v[c] = t;
		i = c;
	}
}

/* strs_sort is a heapsort: O(n log n) whatever the input, no allocation. */
static void strs_sort(strs *l) {
	S *v = l->v;
	u32 n = l->n;
	for (u32 i = n / 2; i-- > 0;)
		sift(v, i, n);
	for (u32 end = n; end-- > 1;) {
		S t = v[0];
		v[0] = v[end], v[end] = t;
		sift(v, 0, end);
	}
}

static void strs_set(strs *l) {
	strs_sort(l);
	u32 k = 0;
	for (u32 i = 0; i < l->n; i++)
		if (k == 0 || !str_eq(l->v[k - 1], l->v[i]))
			l->v[k++] = l->v[i];
	l->n = k;
}

static void join(sb *b, const strs *l, const char *sep, u32 seplen) {
	for (u32 i = 0; i < l->n; i++) {
		if (i)
			sb_put(b, sep, seplen);
		sb_str(b, l->v[i]);
	}
}

/* quote_list: `"a", "b"` */
static void quote_list(sb *b, const strs *l) {
	for (u32 i = 0; i < l->n; i++) {
		if (i)
			sb_lit(b, ", ");
		sb_quote(b, l->v[i]);
	}
}

#define PLURAL(b, single, many, n) ((n) == 1 ? sb_lit((b), single) : sb_lit((b), many))

/* containers: `container "a"` or `containers "a", "b"` */
static void containers(sb *b, const strs *names) {
	PLURAL(b, "container ", "containers ", names->n);
	quote_list(b, names);
}

/* setters: "pod", `containers "a"`, or both joined by " and ". */
static void setters(sb *b, int pod, const strs *ctrs) {
	if (pod)
		sb_lit(b, "pod");
	if (ctrs->n) {
		if (pod)
			sb_lit(b, " and ");
		containers(b, ctrs);
	}
}

/* ---- the flattened pod ----------------------------------------------------- */

/* Optional (pointer) fields of the Go model: -1 unset, else the value. */
typedef signed char tri;

typedef struct {
	vigil_list l;
	u32 count;
} list;

typedef struct {
	int set;
	S user, role, type;
} selinux;

typedef struct {
	S name;
	list host_ports, probe_hosts, caps_add, caps_drop;
	tri privileged, allow_priv_esc, run_as_non_root, windows_host_process;
	int has_run_as_user, has_proc_mount, has_seccomp, has_apparmor;
	vigil_i64 run_as_user;
	S proc_mount, seccomp, apparmor;
	selinux se;
} ctr;

typedef struct {
	S name, type;
} vol;

typedef struct {
	int host_network, host_pid, host_ipc;
	tri host_users, run_as_non_root, windows_host_process;
	int has_run_as_user, has_seccomp, has_apparmor;
	vigil_i64 run_as_user;
	S os, seccomp, apparmor;
	selinux se;
	list sysctls, annotations;
	vol *vols;
	u32 nvols;
	ctr *ctrs;
	u32 nctrs;
} pod;

enum { T_STR = 1, T_LIST, T_BOOL, T_INT };

/* field_type is the wire type of an admission field id, 0 when unknown
 * (unknown ids are skipped, as event.DecodeAdmission does). */
static int field_type(u32 id) {
	switch (id) {
	case 1000: case 1001: case 1002: case 1003: case 1004: case 1007: case 1008: case 1009:
	case 1104: case 1105: case 1109: case 1110: case 1111: case 1112: case 1113: case 1114:
	case 1200: case 1201: case 1202:
	case 1300: case 1301: case 1302: case 1317: case 1318: case 1319: case 1320: case 1321: case 1322: case 1323:
		return T_STR;
	case 1005: case 1115: case 1117: case 1118:
	case 1303: case 1304: case 1305: case 1306: case 1307: case 1308: case 1311: case 1312:
		return T_LIST;
	case 1006: case 1100: case 1101: case 1102: case 1103: case 1106: case 1116: case 1121:
	case 1309: case 1310: case 1313: case 1316: case 1324: case 1325:
		return T_BOOL;
	case 1107: case 1108: case 1119: case 1120: case 1314: case 1315:
		return T_INT;
	}
	return 0;
}

/* list_count validates a string-list value and counts its items. */
static int list_count(const u8 *v, u32 n, u32 *count) {
	u32 c = 0;
	while (n > 0) {
		if (n < 2)
			return 0;
		u32 l = vigil__u16(v);
		if (l > n - 2)
			return 0;
		v += 2 + l, n -= 2 + l, c++;
	}
	*count = c;
	return 1;
}

/* load walks the event's records once into p, with event.Decode's and
 * event.DecodeAdmission's checks; on failure it returns the reason. */
static const char *load(const vigil_event *e, pod *p) {
	if (e->len > (1u << 20))
		return "event longer than 1 MiB";
	u32 nrec = vigil__u16(e->p + 6), off = 8;
	if (nrec > (e->len - 8) / 8)
		return "more records than fit in the event";
	for (u32 i = 0; i < nrec; i++) {
		if (e->len - off < 8)
			return "short record header";
		u32 id = vigil__u16(e->p + off), idx = vigil__u16(e->p + off + 2), n = vigil__u32(e->p + off + 4);
		off += 8;
		if (n > e->len - off)
			return "record longer than the event";
		const u8 *v = e->p + off;
		off += n;
		if (id < 1000 || id > 1999)
			continue;
		int t = field_type(id);
		if (!t)
			continue;
		S s = {(const char *)v, n};
		list l = {{v, n}, 0};
		vigil_i64 iv = 0;
		tri b = 0;
		if (t == T_INT) {
			if (n != 8)
				return "integer field of the wrong size";
			iv = (vigil_i64)vigil__u64(v);
		} else if (t == T_BOOL) {
			if (n != 1 || v[0] > 1)
				return "bad bool";
			b = (tri)v[0];
		} else if (t == T_LIST && !list_count(v, n, &l.count)) {
			return "bad string list";
		}
		if (id < 1200 && idx != 0)
			return "index on a pod-level field";
		ctr *c = 0;
		vol *vl = 0;
		if (id >= 1300) {
			if (idx >= p->nctrs)
				return "container index out of range";
			c = &p->ctrs[idx];
		} else if (id >= 1200) {
			if (idx >= p->nvols)
				return "volume index out of range";
			vl = &p->vols[idx];
		}
		switch (id) {
		case 1100: p->host_network = b; break;
		case 1101: p->host_pid = b; break;
		case 1102: p->host_ipc = b; break;
		case 1103: p->host_users = b; break;
		case 1104: p->os = s; break;
		case 1106: p->run_as_non_root = b; break;
		case 1107: p->has_run_as_user = 1, p->run_as_user = iv; break;
		case 1109: p->has_seccomp = 1, p->seccomp = s; break;
		case 1110: p->has_apparmor = 1, p->apparmor = s; break;
		case 1111: p->se.set = 1, p->se.user = s; break;
		case 1112: p->se.set = 1, p->se.role = s; break;
		case 1113: p->se.set = 1, p->se.type = s; break;
		case 1114: p->se.set = 1; break;
		case 1115: p->sysctls = l; break;
		case 1116: p->windows_host_process = b; break;
		case 1117: p->annotations = l; break;
		case 1119:
			if ((vigil_u64)iv > 0xffff)
				return "too many volumes";
			p->nvols = (u32)iv;
			p->vols = alloc(p->nvols * sizeof(vol));
			break;
		case 1120:
			if ((vigil_u64)iv > 0xffff)
				return "too many containers";
			p->nctrs = (u32)iv;
			p->ctrs = alloc(p->nctrs * sizeof(ctr));
			for (u32 k = 0; k < p->nctrs; k++) {
				ctr *x = &p->ctrs[k];
				x->privileged = x->allow_priv_esc = x->run_as_non_root = x->windows_host_process = -1;
			}
			break;
		case 1121:
			if (b)
				p->se.set = 1;
			break;
		case 1200: vl->name = s; break;
		case 1201: vl->type = s; break;
		case 1300: c->name = s; break;
		case 1306: c->host_ports = l; break;
		case 1307: c->probe_hosts = l; break;
		case 1309: c->privileged = b; break;
		case 1310: c->allow_priv_esc = b; break;
		case 1311: c->caps_add = l; break;
		case 1312: c->caps_drop = l; break;
		case 1313: c->run_as_non_root = b; break;
		case 1314: c->has_run_as_user = 1, c->run_as_user = iv; break;
		case 1317: c->has_proc_mount = 1, c->proc_mount = s; break;
		case 1318: c->has_seccomp = 1, c->seccomp = s; break;
		case 1319: c->has_apparmor = 1, c->apparmor = s; break;
		case 1320: c->se.set = 1, c->se.user = s; break;
		case 1321: c->se.set = 1, c->se.role = s; break;
		case 1322: c->se.set = 1, c->se.type = s; break;
		case 1323: c->se.set = 1; break;
		case 1324: c->windows_host_process = b; break;
		case 1325:
			if (b)
				c->se.set = 1;
			break;
		}
	}
	if (off != e->len)
		return "trailing bytes after the records";
	return 0;
}

/* ---- checks ---------------------------------------------------------------- */

/* Each check appends "<reason> (<detail>)" to out and returns 1 when the pod
 * violates it; it leaves out alone and returns 0 when the pod passes. The
 * bodies follow webhook/pss/pss.go function by function. */
typedef int (*check_fn)(const pod *, sb *);

static int windows(const pod *p) { return vigil_str_eq(p->os, "windows"); }
static int user_namespaced(const pod *p) { return p->host_users == 0; }

static int host_namespaces(const pod *p, sb *out) {
	if (!p->host_network && !p->host_pid && !p->host_ipc)
		return 0;
	sb_lit(out, "host namespaces (");
	int n = 0;
	if (p->host_network)
		sb_lit(out, "hostNetwork=true"), n++;
	if (p->host_pid) {
		if (n++)
			sb_lit(out, ", ");
		sb_lit(out, "hostPID=true");
	}
	if (p->host_ipc) {
		if (n++)
			sb_lit(out, ", ");
		sb_lit(out, "hostIPC=true");
	}
	sb_byte(out, ')');
	return 1;
}

static int privileged(const pod *p, sb *out) {
	strs bad = {0};
	for (u32 i = 0; i < p->nctrs; i++)
		if (p->ctrs[i].privileged == 1)
			strs_add(&bad, p->ctrs[i].name);
	if (!bad.n)
		return 0;
	sb_lit(out, "privileged (");
	containers(out, &bad);
	sb_lit(out, " must not set securityContext.privileged=true)");
	return 1;
}

static int baseline_cap(S c) {
	return vigil_str_in(c, "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
			    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT");
}

static int capabilities_baseline(const pod *p, sb *out) {
	strs bad = {0}, caps = {0};
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		vigil_list it = c->caps_add.l;
		S cp;
		int valid = 1;
		while (vigil_list_next(&it, &cp))
			if (!baseline_cap(cp))
				valid = 0, strs_add(&caps, cp);
		if (!valid)
			strs_add(&bad, c->name);
	}
	if (!bad.n)
		return 0;
	strs_set(&caps);
	sb_lit(out, "non-default capabilities (");
	containers(out, &bad);
	sb_lit(out, " must not include ");
	quote_list(out, &caps);
	sb_lit(out, " in securityContext.capabilities.add)");
	return 1;
}

static int host_path_volumes(const pod *p, sb *out) {
	strs bad = {0};
	for (u32 i = 0; i < p->nvols; i++)
		if (vigil_str_eq(p->vols[i].type, "hostPath"))
			strs_add(&bad, p->vols[i].name);
	if (!bad.n)
		return 0;
	sb_lit(out, "hostPath volumes (");
	PLURAL(out, "volume ", "volumes ", bad.n);
	quote_list(out, &bad);
	sb_byte(out, ')');
	return 1;
}

static int host_ports(const pod *p, sb *out) {
	strs bad = {0}, ports = {0};
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		if (!c->host_ports.count)
			continue;
		strs_add(&bad, c->name);
		vigil_list it = c->host_ports.l;
		S hp;
		while (vigil_list_next(&it, &hp)) {
			S port = hp;
			for (u32 k = 0; k < hp.n; k++)
				if (hp.p[k] == '/') {
					port.n = k;
					break;
				}
			strs_add(&ports, port);
		}
	}
	if (!bad.n)
		return 0;
	strs_set(&ports);
	sb_lit(out, "hostPort (");
	containers(out, &bad);
	PLURAL(out, " uses ", " use ", bad.n);
	PLURAL(out, "hostPort ", "hostPorts ", ports.n);
	join(out, &ports, ", ", 2);
	sb_byte(out, ')');
	return 1;
}

static int host_probes(const pod *p, sb *out) {
	strs bad = {0}, hosts = {0};
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		if (!c->probe_hosts.count)
			continue;
		strs_add(&bad, c->name);
		vigil_list it = c->probe_hosts.l;
		S h;
		while (vigil_list_next(&it, &h))
			strs_add(&hosts, h);
	}
	if (!bad.n)
		return 0;
	strs_sort(&bad);
	strs_set(&hosts);
	sb_lit(out, "probe or lifecycle host (");
	containers(out, &bad);
	PLURAL(out, " uses ", " use ", bad.n);
	PLURAL(out, "probe or lifecycle host ", "probe or lifecycle hosts ", hosts.n);
	quote_list(out, &hosts);
	sb_byte(out, ')');
	return 1;
}

static int apparmor_allowed(S t) { return vigil_str_eq(t, "RuntimeDefault") || vigil_str_eq(t, "Localhost"); }

static int apparmor_profile(const pod *p, sb *out) {
	int pod_bad = p->has_apparmor && !apparmor_allowed(p->apparmor);
	strs values = {0}, ctrs = {0}, annotations = {0};
	if (pod_bad)
		strs_add(&values, p->apparmor);
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		if (c->has_apparmor && !apparmor_allowed(c->apparmor))
			strs_add(&ctrs, c->name), strs_add(&values, c->apparmor);
	}
	strs_set(&values);
	vigil_list it = p->annotations.l;
	S kv;
	while (vigil_list_next(&it, &kv)) {
		S k = kv, v = {kv.p + kv.n, 0};
		for (u32 j = 0; j < kv.n; j++)
			if (kv.p[j] == '=') {
				k.n = j, v.p = kv.p + j + 1, v.n = kv.n - j - 1;
				break;
			}
		if (vigil_str_prefix(k, "container.apparmor.security.beta.kubernetes.io/") && v.n &&
		    !vigil_str_eq(v, "runtime/default") && !vigil_str_prefix(v, "localhost/")) {
			sb a = {0};
			sb_str(&a, k);
			sb_byte(&a, '=');
			sb_quote(&a, v);
			strs_add(&annotations, sb_done(&a));
		}
	}
	if (!pod_bad && !ctrs.n && !annotations.n)
		return 0;
	strs_sort(&annotations);
	for (u32 i = 0; i < annotations.n; i++)
		strs_add(&values, annotations.v[i]);
	PLURAL(out, "forbidden AppArmor profile (", "forbidden AppArmor profiles (", values.n);
	int who = 0;
	if (pod_bad)
		sb_lit(out, "pod"), who++;
	if (ctrs.n) {
		if (who++)
			sb_lit(out, " and ");
		containers(out, &ctrs);
	}
	if (annotations.n) {
		if (who++)
			sb_lit(out, " and ");
		PLURAL(out, "annotation", "annotations", annotations.n);
	}
	sb_lit(out, " must not set AppArmor profile type to ");
	quote_list(out, &values);
	sb_byte(out, ')');
	return 1;
}

typedef struct {
	strs types;
	int set_user, set_role;
} selinux_acc;

static int selinux_valid(const selinux *o, selinux_acc *acc) {
	int ok = 1;
	if (!vigil_str_in(o->type, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"))
		ok = 0, strs_add(&acc->types, o->type);
	if (o->user.n)
		ok = 0, acc->set_user = 1;
	if (o->role.n)
		ok = 0, acc->set_role = 1;
	return ok;
}

static int selinux_options(const pod *p, sb *out) {
	selinux_acc acc = {0};
	int pod_bad = p->se.set && !selinux_valid(&p->se, &acc);
	strs ctrs = {0};
	for (u32 i = 0; i < p->nctrs; i++)
		if (p->ctrs[i].se.set && !selinux_valid(&p->ctrs[i].se, &acc))
			strs_add(&ctrs, p->ctrs[i].name);
	if (!pod_bad && !ctrs.n)
		return 0;
	sb_lit(out, "seLinuxOptions (");
	setters(out, pod_bad, &ctrs);
	sb_lit(out, " set forbidden securityContext.seLinuxOptions: ");
	int n = 0;
	if (acc.types.n) {
		strs_set(&acc.types);
		PLURAL(out, "type ", "types ", acc.types.n);
		quote_list(out, &acc.types);
		n++;
	}
	if (acc.set_user) {
		if (n++)
			sb_lit(out, "; ");
		sb_lit(out, "user may not be set");
	}
	if (acc.set_role) {
		if (n++)
			sb_lit(out, "; ");
		sb_lit(out, "role may not be set");
	}
	sb_byte(out, ')');
	return 1;
}

static int proc_mount(const pod *p, sb *out) {
	strs bad = {0}, types = {0};
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		if (c->has_proc_mount && !vigil_str_eq(c->proc_mount, "Default"))
			strs_add(&bad, c->name), strs_add(&types, c->proc_mount);
	}
	if (!bad.n)
		return 0;
	strs_set(&types);
	sb_lit(out, "procMount (");
	containers(out, &bad);
	sb_lit(out, " must not set securityContext.procMount to ");
	quote_list(out, &types);
	sb_byte(out, ')');
	return 1;
}

/* Unmasked /proc is allowed at baseline in user-namespaced pods (1.35+). */
static int proc_mount_baseline(const pod *p, sb *out) { return user_namespaced(p) ? 0 : proc_mount(p, out); }

static int seccomp_valid(S t) { return vigil_str_eq(t, "RuntimeDefault") || vigil_str_eq(t, "Localhost"); }

static int seccomp_baseline(const pod *p, sb *out) {
	strs bad = {0}, ctrs = {0};
	int pod_bad = p->has_seccomp && !seccomp_valid(p->seccomp);
	if (pod_bad)
		strs_add(&bad, p->seccomp);
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		if (c->has_seccomp && !seccomp_valid(c->seccomp))
			strs_add(&ctrs, c->name), strs_add(&bad, c->seccomp);
	}
	if (!pod_bad && !ctrs.n)
		return 0;
	strs_set(&bad);
	sb_lit(out, "seccompProfile (");
	setters(out, pod_bad, &ctrs);
	sb_lit(out, " must not set securityContext.seccompProfile.type to ");
	quote_list(out, &bad);
	sb_byte(out, ')');
	return 1;
}

static int safe_sysctl(S s) {
	return vigil_str_in(s, "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
			    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
			    "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
			    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem",
			    "net.ipv4.tcp_wmem", "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat");
}

static int sysctls(const pod *p, sb *out) {
	strs bad = {0};
	vigil_list it = p->sysctls.l;
	S s;
	while (vigil_list_next(&it, &s))
		if (!safe_sysctl(s))
			strs_add(&bad, s);
	if (!bad.n)
		return 0;
	sb_lit(out, "forbidden sysctls (");
	join(out, &bad, ", ", 2);
	sb_byte(out, ')');
	return 1;
}

static int windows_host_process(const pod *p, sb *out) {
	strs ctrs = {0};
	for (u32 i = 0; i < p->nctrs; i++)
		if (p->ctrs[i].windows_host_process == 1)
			strs_add(&ctrs, p->ctrs[i].name);
	int pod_bad = p->windows_host_process == 1;
	if (!pod_bad && !ctrs.n)
		return 0;
	sb_lit(out, "hostProcess (");
	setters(out, pod_bad, &ctrs);
	sb_lit(out, " must not set securityContext.windowsOptions.hostProcess=true)");
	return 1;
}

static int allow_privilege_escalation(const pod *p, sb *out) {
	if (windows(p))
		return 0;
	strs bad = {0};
	for (u32 i = 0; i < p->nctrs; i++)
		if (p->ctrs[i].allow_priv_esc != 0)
			strs_add(&bad, p->ctrs[i].name);
	if (!bad.n)
		return 0;
	sb_lit(out, "allowPrivilegeEscalation != false (");
	containers(out, &bad);
	sb_lit(out, " must set securityContext.allowPrivilegeEscalation=false)");
	return 1;
}

static int capabilities_restricted(const pod *p, sb *out) {
	if (windows(p))
		return 0;
	strs missing_drop = {0}, adding = {0}, caps = {0};
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		vigil_list it = c->caps_drop.l;
		S s;
		int dropped = 0;
		while (!dropped && vigil_list_next(&it, &s))
			dropped = vigil_str_eq(s, "ALL");
		if (!dropped)
			strs_add(&missing_drop, c->name);
		int forbidden = 0;
		it = c->caps_add.l;
		while (vigil_list_next(&it, &s))
			if (!vigil_str_eq(s, "NET_BIND_SERVICE"))
				forbidden = 1, strs_add(&caps, s);
		if (forbidden)
			strs_add(&adding, c->name);
	}
	if (!missing_drop.n && !adding.n)
		return 0;
	sb_lit(out, "unrestricted capabilities (");
	if (missing_drop.n) {
		containers(out, &missing_drop);
		sb_lit(out, " must set securityContext.capabilities.drop=[\"ALL\"]");
	}
	if (adding.n) {
		if (missing_drop.n)
			sb_lit(out, "; ");
		strs_set(&caps);
		containers(out, &adding);
		sb_lit(out, " must not include ");
		quote_list(out, &caps);
		sb_lit(out, " in securityContext.capabilities.add");
	}
	sb_byte(out, ')');
	return 1;
}

static int restricted_volume_type(S t) {
	return vigil_str_in(t, "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
			    "persistentVolumeClaim", "projected", "secret");
}

static int restricted_volumes(const pod *p, sb *out) {
	strs bad = {0}, types = {0};
	for (u32 i = 0; i < p->nvols; i++)
		if (!restricted_volume_type(p->vols[i].type))
			strs_add(&bad, p->vols[i].name), strs_add(&types, p->vols[i].type);
	if (!bad.n)
		return 0;
	strs_set(&types);
	sb_lit(out, "restricted volume types (");
	PLURAL(out, "volume ", "volumes ", bad.n);
	quote_list(out, &bad);
	PLURAL(out, " uses ", " use ", bad.n);
	PLURAL(out, "restricted volume type ", "restricted volume types ", types.n);
	quote_list(out, &types);
	sb_byte(out, ')');
	return 1;
}

static int run_as_non_root(const pod *p, sb *out) {
	if (user_namespaced(p))
		return 0;
	int pod_bad = p->run_as_non_root == 0, pod_ok = p->run_as_non_root == 1;
	strs explicit = {0}, implicit = {0};
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		if (c->run_as_non_root >= 0) {
			if (!c->run_as_non_root)
				strs_add(&explicit, c->name);
		} else if (!pod_ok) {
			strs_add(&implicit, c->name);
		}
	}
	if (pod_bad || explicit.n) {
		sb_lit(out, "runAsNonRoot != true (");
		setters(out, pod_bad, &explicit);
		sb_lit(out, " must not set securityContext.runAsNonRoot=false)");
		return 1;
	}
	if (implicit.n) {
		sb_lit(out, "runAsNonRoot != true (pod or ");
		containers(out, &implicit);
		sb_lit(out, " must set securityContext.runAsNonRoot=true)");
		return 1;
	}
	return 0;
}

static int run_as_user(const pod *p, sb *out) {
	if (user_namespaced(p))
		return 0;
	int pod_bad = p->has_run_as_user && p->run_as_user == 0;
	strs ctrs = {0};
	for (u32 i = 0; i < p->nctrs; i++)
		if (p->ctrs[i].has_run_as_user && p->ctrs[i].run_as_user == 0)
			strs_add(&ctrs, p->ctrs[i].name);
	if (!pod_bad && !ctrs.n)
		return 0;
	sb_lit(out, "runAsUser=0 (");
	setters(out, pod_bad, &ctrs);
	sb_lit(out, " must not set runAsUser=0)");
	return 1;
}

static int seccomp_restricted(const pod *p, sb *out) {
	if (windows(p))
		return 0;
	strs bad = {0}, explicit = {0}, implicit = {0};
	int pod_bad = 0, pod_ok = 0;
	if (p->has_seccomp) {
		if (seccomp_valid(p->seccomp))
			pod_ok = 1;
		else
			pod_bad = 1, strs_add(&bad, p->seccomp);
	}
	for (u32 i = 0; i < p->nctrs; i++) {
		const ctr *c = &p->ctrs[i];
		if (c->has_seccomp) {
			if (!seccomp_valid(c->seccomp))
				strs_add(&explicit, c->name), strs_add(&bad, c->seccomp);
		} else if (!pod_ok) {
			strs_add(&implicit, c->name);
		}
	}
	if (pod_bad || explicit.n) {
		strs_set(&bad);
		sb_lit(out, "seccompProfile (");
		setters(out, pod_bad, &explicit);
		sb_lit(out, " must not set securityContext.seccompProfile.type to ");
		quote_list(out, &bad);
		sb_byte(out, ')');
		return 1;
	}
	if (implicit.n) {
		sb_lit(out, "seccompProfile (pod or ");
		containers(out, &implicit);
		sb_lit(out, " must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")");
		return 1;
	}
	return 0;
}

/* checks is webhook/pss's table: same ids, same order. A restricted check
 * with an override replaces that baseline check at restricted. */
enum { BASELINE = 1, RESTRICTED = 2 };
static const struct {
	const char *id;
	int level;
	int replaced; /* a baseline check replaced at restricted */
	check_fn fn;
} checks[] = {
	{"appArmorProfile", BASELINE, 0, apparmor_profile},
	{"capabilities_baseline", BASELINE, 1, capabilities_baseline},
	{"hostNamespaces", BASELINE, 0, host_namespaces},
	{"hostPathVolumes", BASELINE, 1, host_path_volumes},
	{"hostPorts", BASELINE, 0, host_ports},
	{"hostProbesAndHostLifecycle", BASELINE, 0, host_probes},
	{"privileged", BASELINE, 0, privileged},
	{"procMount", BASELINE, 1, proc_mount_baseline},
	{"seccompProfile_baseline", BASELINE, 1, seccomp_baseline},
	{"seLinuxOptions", BASELINE, 0, selinux_options},
	{"sysctls", BASELINE, 0, sysctls},
	{"windowsHostProcess", BASELINE, 0, windows_host_process},

	{"allowPrivilegeEscalation", RESTRICTED, 0, allow_privilege_escalation},
	{"capabilities_restricted", RESTRICTED, 0, capabilities_restricted},
	{"procMount_restricted", RESTRICTED, 0, proc_mount},
	{"restrictedVolumes", RESTRICTED, 0, restricted_volumes},
	{"runAsNonRoot", RESTRICTED, 0, run_as_non_root},
	{"runAsUser", RESTRICTED, 0, run_as_user},
	{"seccompProfile_restricted", RESTRICTED, 0, seccomp_restricted},
};
#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

/* ---- verdicts -------------------------------------------------------------- */

#define MAX_MESSAGE 1024

/* message renders lines one per line within MAX_MESSAGE bytes, exactly as
 * the Go pack's message(): whole lines, then "truncated: N more violations";
 * a first line too long on its own is cut on a rune boundary. */
static S message(const strs *lines) {
	sb b = {0};
	u32 total = 0;
	for (u32 i = 0; i < lines->n; i++)
		total += (i > 0) + lines->v[i].n;
	if (total <= MAX_MESSAGE) {
		join(&b, lines, "\n", 1);
		return sb_done(&b);
	}
	const u32 budget = MAX_MESSAGE - (sizeof("\ntruncated: 9999 more violations") - 1);
	u32 i = 0;
	for (; i < lines->n; i++) {
		u32 sep = i > 0;
		if (b.n + sep + lines->v[i].n > budget)
			break;
		if (sep)
			sb_byte(&b, '\n');
		sb_str(&b, lines->v[i]);
	}
	if (i == 0) {
		S l = lines->v[0];
		u32 n = budget;
		while (n > 0 && ((u8)l.p[n] & 0xc0) == 0x80)
			n--;
		l.n = n;
		sb_str(&b, l);
		i = 1;
	}
	if (lines->n > i) {
		sb_lit(&b, "\ntruncated: ");
		sb_uint(&b, lines->n - i);
		sb_lit(&b, " more violations");
	}
	return sb_done(&b);
}

/* utf8_safe returns s with each byte that is not part of valid UTF-8
 * replaced by U+FFFD, as encoding/json does when the webhook marshals the
 * native checks' text; the host requires UTF-8 messages. Only unquoted
 * values (sysctl names, host ports) can carry such bytes. */
static S utf8_safe(S s) {
	u32 i = 0, w;
	while (i < s.n && decode_rune((const u8 *)s.p + i, s.n - i, &w) >= 0)
		i += w;
	if (i == s.n)
		return s;
	sb b = {0};
	sb_put(&b, s.p, i);
	while (i < s.n) {
		if (decode_rune((const u8 *)s.p + i, s.n - i, &w) < 0)
			sb_lit(&b, "\xef\xbf\xbd");
		else
			sb_put(&b, s.p + i, w);
		i += w;
	}
	return sb_done(&b);
}

static void answer(vigil_u16 rule, const strs *lines) {
	if (!lines->n) {
		vigil_observe(rule, "pass", VIGIL_NO_FIELDS);
		return;
	}
	S m = message(lines);
	vigil__emit(1, rule, VIGIL_DEFAULT, VIGIL_DEFAULT, m.p, m.n, VIGIL_NO_FIELDS);
}

void vigil_rules(const vigil_event *e) {
	if (e->kind != VIGIL_KIND_ADMISSION)
		return;
	arena_off = 0;
	pod p = {0};
	p.host_users = p.run_as_non_root = p.windows_host_process = -1;
	const char *bad = load(e, &p);
	if (bad) {
		/* An event the host built but we cannot read: deny rather than
		 * pass it unchecked. */
		sb m = {0};
		sb_lit(&m, "decode: decode admission event: ");
		sb_put(&m, bad, vigil__loopstrlen(bad));
		vigil__emit(1, R_BASELINE, VIGIL_DEFAULT, VIGIL_DEFAULT, m.p, m.n, VIGIL_NO_FIELDS);
		vigil__emit(1, R_RESTRICTED, VIGIL_DEFAULT, VIGIL_DEFAULT, m.p, m.n, VIGIL_NO_FIELDS);
		return;
	}
	strs base = {0}, restr = {0};
	for (u32 i = 0; i < NCHECKS; i++) {
		sb line = {0};
		sb_put(&line, checks[i].id, vigil__loopstrlen(checks[i].id));
		sb_lit(&line, ": ");
		if (!checks[i].fn(&p, &line))
			continue;
		S l = utf8_safe(sb_done(&line));
		if (checks[i].level == BASELINE)
			strs_add(&base, l);
		if (!checks[i].replaced)
			strs_add(&restr, l);
	}
	answer(R_BASELINE, &base);
	answer(R_RESTRICTED, &restr);
}
