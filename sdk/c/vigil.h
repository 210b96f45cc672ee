/*
 * vigil.h: the C SDK for Vigil rule modules (wasm-rules/ABI.md, version 1).
 * One header, no libc, no allocator. A rule module is one C file:
 *
 *   #include "vigil.h"
 *
 *   VIGIL_META("{\"abi\":1,\"module\":\"my-rules\",\"rules\":[{\"name\":\"Shell in container\","
 *              "\"priority\":\"Warning\",\"kinds\":[\"exec\"]}]}");
 *
 *   void vigil_rules(const vigil_event *e) {       // the one function you write
 *       if (e->kind == VIGIL_KIND_EXEC && vigil_has(e, VIGIL_F_CONTAINER_ID) &&
 *           vigil_str_in(vigil_str(e, VIGIL_F_PROC_NAME), "bash", "sh", "zsh"))
 *           vigil_alert(0, VIGIL_DEFAULT, "shell in container",
 *                       VIGIL_FIELDS(VIGIL_F_PROC_NAME, VIGIL_F_CONTAINER_ID));
 *   }
 *
 * Build:  clang-14 --target=wasm32 -O2 -mbulk-memory -ffreestanding -nostdlib \
 *             -Wl,--no-entry -Wl,--export-dynamic -o rule.wasm rule.c
 *
 * The first argument of vigil_alert/kill/block/observe is the rule's index in
 * the metadata "rules" array. Strings returned by getters point into the
 * event and are valid only during vigil_rules.
 */
#ifndef VIGIL_H
#define VIGIL_H

typedef __UINT8_TYPE__ vigil_u8;
typedef __UINT16_TYPE__ vigil_u16;
typedef __UINT32_TYPE__ vigil_u32;
typedef __INT64_TYPE__ vigil_i64;
typedef __UINT64_TYPE__ vigil_u64;

#define VIGIL_ABI_VERSION 1

/* String helpers are always inlined so that literal lengths fold to
 * constants: the host charges a termination check per Wasm loop iteration,
 * so a strlen loop per comparison is the main cost of a naive rule. */
#define VIGIL_INLINE static inline __attribute__((always_inline))

/* Priorities (alert.Priority) and actions (alert.Action). */
#define VIGIL_EMERGENCY 0
#define VIGIL_ALERT 1
#define VIGIL_CRITICAL 2
#define VIGIL_ERROR 3
#define VIGIL_WARNING 4
#define VIGIL_NOTICE 5
#define VIGIL_INFO 6
#define VIGIL_DEBUG 7
#define VIGIL_DEFAULT 255 /* the rule's default priority or action */

#define VIGIL_ACT_ALERT 1
#define VIGIL_ACT_KILL 2
#define VIGIL_ACT_BLOCK 3

/* BEGIN GENERATED (guard/event/gen) */
#define VIGIL_KIND_EXEC 1
#define VIGIL_KIND_FORK 2
#define VIGIL_KIND_EXIT 3
#define VIGIL_KIND_OPEN 10
#define VIGIL_KIND_UNLINK 11
#define VIGIL_KIND_RENAME 12
#define VIGIL_KIND_LINK 13
#define VIGIL_KIND_SYMLINK 14
#define VIGIL_KIND_CHMOD 15
#define VIGIL_KIND_CONNECT 20
#define VIGIL_KIND_ACCEPT 21
#define VIGIL_KIND_BIND 22
#define VIGIL_KIND_LISTEN 23
#define VIGIL_KIND_PACKET_SOCKET 24
#define VIGIL_KIND_DUP_SOCKET 25
#define VIGIL_KIND_SETUID 30
#define VIGIL_KIND_SETGID 31
#define VIGIL_KIND_CAPSET 32
#define VIGIL_KIND_PTRACE 33
#define VIGIL_KIND_MOUNT 34
#define VIGIL_KIND_UMOUNT 35
#define VIGIL_KIND_UNSHARE 36
#define VIGIL_KIND_SETNS 37
#define VIGIL_KIND_MODULE_LOAD 38
#define VIGIL_KIND_MEMFD_CREATE 39
#define VIGIL_KIND_ADMISSION 100
#define VIGIL_KIND_DEVIATION 110
#define VIGIL_F_EVT_KIND 1 /* u64, evt.kind */
#define VIGIL_F_EVT_TIME 2 /* u64, evt.time */
#define VIGIL_F_EVT_CPU 3 /* u64, evt.cpu */
#define VIGIL_F_EVT_RET 4 /* i64, evt.ret */
#define VIGIL_F_PROC_PID 10 /* u64, proc.pid */
#define VIGIL_F_PROC_TID 11 /* u64, proc.tid */
#define VIGIL_F_PROC_PPID 12 /* u64, proc.ppid */
#define VIGIL_F_PROC_NAME 13 /* string, proc.name */
#define VIGIL_F_PROC_EXE 14 /* string, proc.exe */
#define VIGIL_F_PROC_ARGS 15 /* string list, proc.args */
#define VIGIL_F_PROC_ARGS_TRUNCATED 16 /* bool, proc.args_truncated */
#define VIGIL_F_PROC_CWD 17 /* string, proc.cwd */
#define VIGIL_F_PROC_TTY 18 /* u64, proc.tty */
#define VIGIL_F_PROC_CGROUP_ID 19 /* u64, proc.cgroup_id */
#define VIGIL_F_PROC_PIDNS 20 /* u64, proc.pidns */
#define VIGIL_F_PROC_MNTNS 21 /* u64, proc.mntns */
#define VIGIL_F_PROC_EXE_MEMFD 22 /* bool, proc.exe_memfd */
#define VIGIL_F_PROC_EXE_UPPER 23 /* bool, proc.exe_upper */
#define VIGIL_F_PROC_EXIT_CODE 24 /* i64, proc.exit_code */
#define VIGIL_F_PROC_PNAME 25 /* string, proc.pname */
#define VIGIL_F_PROC_PEXE 26 /* string, proc.pexe */
#define VIGIL_F_PROC_ANCESTORS 27 /* string list, proc.ancestors */
#define VIGIL_F_PROC_START_TIME 28 /* u64, proc.start_time */
#define VIGIL_F_PROC_EXEC_PATH 29 /* string, proc.exec_path */
#define VIGIL_F_USER_UID 40 /* u64, user.uid */
#define VIGIL_F_USER_GID 41 /* u64, user.gid */
#define VIGIL_F_USER_EUID 42 /* u64, user.euid */
#define VIGIL_F_USER_EGID 43 /* u64, user.egid */
#define VIGIL_F_USER_LOGINUID 44 /* u64, user.loginuid */
#define VIGIL_F_CONTAINER_ID 60 /* string, container.id */
#define VIGIL_F_CONTAINER_RUNTIME 61 /* string, container.runtime */
#define VIGIL_F_CONTAINER_NAME 62 /* string, container.name */
#define VIGIL_F_CONTAINER_IMAGE 63 /* string, container.image */
#define VIGIL_F_CONTAINER_IMAGE_DIGEST 64 /* string, container.image_digest */
#define VIGIL_F_K8S_POD_UID 80 /* string, k8s.pod_uid */
#define VIGIL_F_K8S_NS 81 /* string, k8s.ns */
#define VIGIL_F_K8S_POD 82 /* string, k8s.pod */
#define VIGIL_F_K8S_CONTAINER 83 /* string, k8s.container */
#define VIGIL_F_K8S_WORKLOAD 84 /* string, k8s.workload */
#define VIGIL_F_K8S_REVISION 85 /* string, k8s.revision */
#define VIGIL_F_FILE_PATH 100 /* string, file.path */
#define VIGIL_F_FILE_NEW_PATH 101 /* string, file.new_path */
#define VIGIL_F_FILE_FLAGS 102 /* u64, file.flags */
#define VIGIL_F_FILE_MODE 103 /* u64, file.mode */
#define VIGIL_F_NET_FAMILY 120 /* u64, net.family */
#define VIGIL_F_NET_PROTO 121 /* u64, net.proto */
#define VIGIL_F_NET_SOCK_TYPE 122 /* u64, net.sock_type */
#define VIGIL_F_NET_SRC_ADDR 123 /* ip address, net.src_addr */
#define VIGIL_F_NET_SRC_PORT 124 /* u64, net.src_port */
#define VIGIL_F_NET_DST_ADDR 125 /* ip address, net.dst_addr */
#define VIGIL_F_NET_DST_PORT 126 /* u64, net.dst_port */
#define VIGIL_F_NET_FD 127 /* i64, net.fd */
#define VIGIL_F_NET_BACKLOG 128 /* i64, net.backlog */
#define VIGIL_F_PRIV_OP 140 /* string, priv.op */
#define VIGIL_F_PRIV_ID0 141 /* i64, priv.id0 */
#define VIGIL_F_PRIV_ID1 142 /* i64, priv.id1 */
#define VIGIL_F_PRIV_ID2 143 /* i64, priv.id2 */
#define VIGIL_F_PRIV_CAP_EFFECTIVE 144 /* u64, priv.cap_effective */
#define VIGIL_F_PRIV_CAP_PERMITTED 145 /* u64, priv.cap_permitted */
#define VIGIL_F_PRIV_CAP_INHERITABLE 146 /* u64, priv.cap_inheritable */
#define VIGIL_F_PRIV_PTRACE_REQUEST 147 /* i64, priv.ptrace_request */
#define VIGIL_F_PRIV_TARGET_PID 148 /* u64, priv.target_pid */
#define VIGIL_F_PRIV_FLAGS 149 /* u64, priv.flags */
#define VIGIL_F_PRIV_MOUNT_SOURCE 150 /* string, priv.mount_source */
#define VIGIL_F_PRIV_MOUNT_TARGET 151 /* string, priv.mount_target */
#define VIGIL_F_PRIV_FSTYPE 152 /* string, priv.fstype */
#define VIGIL_F_PRIV_NAME 153 /* string, priv.name */
#define VIGIL_F_ADM_KIND 1000 /* string, adm.kind */
#define VIGIL_F_ADM_NAMESPACE 1001 /* string, adm.namespace */
#define VIGIL_F_ADM_NAME 1002 /* string, adm.name */
#define VIGIL_F_ADM_OPERATION 1003 /* string, adm.operation */
#define VIGIL_F_ADM_USER 1004 /* string, adm.user */
#define VIGIL_F_ADM_GROUPS 1005 /* string list, adm.groups */
#define VIGIL_F_ADM_DRY_RUN 1006 /* bool, adm.dry_run */
#define VIGIL_F_ADM_UID 1007 /* string, adm.uid */
#define VIGIL_F_ADM_WORKLOAD 1008 /* string, adm.workload */
#define VIGIL_F_ADM_REVISION 1009 /* string, adm.revision */
#define VIGIL_F_POD_HOST_NETWORK 1100 /* bool, pod.host_network */
#define VIGIL_F_POD_HOST_PID 1101 /* bool, pod.host_pid */
#define VIGIL_F_POD_HOST_IPC 1102 /* bool, pod.host_ipc */
#define VIGIL_F_POD_HOST_USERS 1103 /* bool, pod.host_users */
#define VIGIL_F_POD_OS 1104 /* string, pod.os */
#define VIGIL_F_POD_SERVICE_ACCOUNT 1105 /* string, pod.service_account */
#define VIGIL_F_POD_RUN_AS_NON_ROOT 1106 /* bool, pod.run_as_non_root */
#define VIGIL_F_POD_RUN_AS_USER 1107 /* i64, pod.run_as_user */
#define VIGIL_F_POD_RUN_AS_GROUP 1108 /* i64, pod.run_as_group */
#define VIGIL_F_POD_SECCOMP 1109 /* string, pod.seccomp */
#define VIGIL_F_POD_APPARMOR 1110 /* string, pod.apparmor */
#define VIGIL_F_POD_SELINUX_USER 1111 /* string, pod.selinux_user */
#define VIGIL_F_POD_SELINUX_ROLE 1112 /* string, pod.selinux_role */
#define VIGIL_F_POD_SELINUX_TYPE 1113 /* string, pod.selinux_type */
#define VIGIL_F_POD_SELINUX_LEVEL 1114 /* string, pod.selinux_level */
#define VIGIL_F_POD_SYSCTLS 1115 /* string list, pod.sysctls */
#define VIGIL_F_POD_WINDOWS_HOST_PROCESS 1116 /* bool, pod.windows_host_process */
#define VIGIL_F_POD_ANNOTATIONS 1117 /* string list, pod.annotations */
#define VIGIL_F_POD_LABELS 1118 /* string list, pod.labels */
#define VIGIL_F_POD_VOLUME_COUNT 1119 /* u64, pod.volume_count */
#define VIGIL_F_POD_CONTAINER_COUNT 1120 /* u64, pod.container_count */
#define VIGIL_F_POD_SELINUX_SET 1121 /* bool, pod.selinux_set */
#define VIGIL_F_VOLUME_NAME 1200 /* string, volume.name */
#define VIGIL_F_VOLUME_TYPE 1201 /* string, volume.type */
#define VIGIL_F_VOLUME_HOST_PATH 1202 /* string, volume.host_path */
#define VIGIL_F_CONTAINER_SPEC_NAME 1300 /* string, container.spec_name */
#define VIGIL_F_CONTAINER_SPEC_KIND 1301 /* string, container.spec_kind */
#define VIGIL_F_CONTAINER_SPEC_IMAGE 1302 /* string, container.spec_image */
#define VIGIL_F_CONTAINER_COMMAND 1303 /* string list, container.command */
#define VIGIL_F_CONTAINER_ARGS 1304 /* string list, container.args */
#define VIGIL_F_CONTAINER_PORTS 1305 /* string list, container.ports */
#define VIGIL_F_CONTAINER_HOST_PORTS 1306 /* string list, container.host_ports */
#define VIGIL_F_CONTAINER_PROBE_HOSTS 1307 /* string list, container.probe_hosts */
#define VIGIL_F_CONTAINER_EXEC_COMMANDS 1308 /* string list, container.exec_commands */
#define VIGIL_F_CONTAINER_PRIVILEGED 1309 /* bool, container.privileged */
#define VIGIL_F_CONTAINER_ALLOW_PRIVILEGE_ESCALATION 1310 /* bool, container.allow_privilege_escalation */
#define VIGIL_F_CONTAINER_CAPS_ADD 1311 /* string list, container.caps_add */
#define VIGIL_F_CONTAINER_CAPS_DROP 1312 /* string list, container.caps_drop */
#define VIGIL_F_CONTAINER_RUN_AS_NON_ROOT 1313 /* bool, container.run_as_non_root */
#define VIGIL_F_CONTAINER_RUN_AS_USER 1314 /* i64, container.run_as_user */
#define VIGIL_F_CONTAINER_RUN_AS_GROUP 1315 /* i64, container.run_as_group */
#define VIGIL_F_CONTAINER_READ_ONLY_ROOT_FS 1316 /* bool, container.read_only_root_fs */
#define VIGIL_F_CONTAINER_PROC_MOUNT 1317 /* string, container.proc_mount */
#define VIGIL_F_CONTAINER_SECCOMP 1318 /* string, container.seccomp */
#define VIGIL_F_CONTAINER_APPARMOR 1319 /* string, container.apparmor */
#define VIGIL_F_CONTAINER_SELINUX_USER 1320 /* string, container.selinux_user */
#define VIGIL_F_CONTAINER_SELINUX_ROLE 1321 /* string, container.selinux_role */
#define VIGIL_F_CONTAINER_SELINUX_TYPE 1322 /* string, container.selinux_type */
#define VIGIL_F_CONTAINER_SELINUX_LEVEL 1323 /* string, container.selinux_level */
#define VIGIL_F_CONTAINER_WINDOWS_HOST_PROCESS 1324 /* bool, container.windows_host_process */
#define VIGIL_F_CONTAINER_SELINUX_SET 1325 /* bool, container.selinux_set */
/* END GENERATED */

/* ---- events ------------------------------------------------------------ */

typedef struct {
	const vigil_u8 *p; /* the wire-format event (header included) */
	vigil_u32 len;
	vigil_u16 kind;
	vigil_u32 index; /* position in the batch */
} vigil_event;

/* A string value: not NUL-terminated. n == 0 when absent. */
typedef struct {
	const char *p;
	vigil_u32 n;
} vigil_str_t;

static inline vigil_u16 vigil__u16(const vigil_u8 *p) { return (vigil_u16)(p[0] | p[1] << 8); }
static inline vigil_u32 vigil__u32(const vigil_u8 *p) {
	return (vigil_u32)p[0] | (vigil_u32)p[1] << 8 | (vigil_u32)p[2] << 16 | (vigil_u32)p[3] << 24;
}
static inline vigil_u64 vigil__u64(const vigil_u8 *p) {
	return (vigil_u64)vigil__u32(p) | (vigil_u64)vigil__u32(p + 4) << 32;
}

/* vigil_find returns the value of field id at element index idx (0 for
 * ordinary fields) and stores its length, or returns 0 when absent. Records
 * are sorted, so the walk stops early. */
static inline const vigil_u8 *vigil_find(const vigil_event *e, vigil_u16 id, vigil_u16 idx, vigil_u32 *len) {
	vigil_u32 off = 8, n = vigil__u16(e->p + 6);
#pragma clang loop unroll_count(4)
	for (vigil_u32 i = 0; i < n && off + 8 <= e->len; i++) {
		vigil_u16 fid = vigil__u16(e->p + off), fidx = vigil__u16(e->p + off + 2);
		vigil_u32 l = vigil__u32(e->p + off + 4);
		if (l > e->len - off - 8)
			return 0;
		if (fid > id || (fid == id && fidx > idx))
			return 0;
		if (fid == id && fidx == idx) {
			*len = l;
			return e->p + off + 8;
		}
		off += 8 + l;
	}
	return 0;
}

static inline int vigil_has(const vigil_event *e, vigil_u16 id) {
	vigil_u32 l;
	return vigil_find(e, id, 0, &l) != 0;
}
static inline vigil_u64 vigil_u64v(const vigil_event *e, vigil_u16 id) {
	vigil_u32 l = 0;
	const vigil_u8 *v = vigil_find(e, id, 0, &l);
	return v && l == 8 ? vigil__u64(v) : 0;
}
static inline vigil_i64 vigil_i64v(const vigil_event *e, vigil_u16 id) { return (vigil_i64)vigil_u64v(e, id); }
static inline int vigil_bool(const vigil_event *e, vigil_u16 id) {
	vigil_u32 l = 0;
	const vigil_u8 *v = vigil_find(e, id, 0, &l);
	return v && l == 1 && v[0] == 1;
}
static inline vigil_str_t vigil_str(const vigil_event *e, vigil_u16 id) {
	vigil_str_t s = {0, 0};
	const vigil_u8 *v = vigil_find(e, id, 0, &s.n);
	s.p = (const char *)v;
	if (!v)
		s.n = 0;
	return s;
}
/* vigil_addr copies an address value (4 or 16 bytes) and returns its length,
 * 0 when absent. */
static inline vigil_u32 vigil_addr(const vigil_event *e, vigil_u16 id, vigil_u8 out[16]) {
	vigil_u32 l = 0;
	const vigil_u8 *v = vigil_find(e, id, 0, &l);
	if (!v || (l != 4 && l != 16))
		return 0;
	for (vigil_u32 i = 0; i < l; i++)
		out[i] = v[i];
	return l;
}

/* String lists: iterate with
 *   vigil_list it = vigil_list_of(e, VIGIL_F_PROC_ARGS); vigil_str_t s;
 *   while (vigil_list_next(&it, &s)) { ... } */
typedef struct {
	const vigil_u8 *p;
	vigil_u32 n;
} vigil_list;

static inline vigil_list vigil_list_of(const vigil_event *e, vigil_u16 id) {
	vigil_list l = {0, 0};
	l.p = vigil_find(e, id, 0, &l.n);
	if (!l.p)
		l.n = 0;
	return l;
}
static inline int vigil_list_next(vigil_list *l, vigil_str_t *s) {
	if (l->n < 2)
		return 0;
	vigil_u32 n = vigil__u16(l->p);
	if (n > l->n - 2)
		return 0;
	s->p = (const char *)l->p + 2;
	s->n = n;
	l->p += 2 + n;
	l->n -= 2 + n;
	return 1;
}

/* ---- strings ------------------------------------------------------------- */

/* strlen for the cases the compiler cannot fold (non-literal arguments);
 * with literals, __builtin_strlen folds to a constant after inlining. */
__attribute__((weak)) __SIZE_TYPE__ strlen(const char *c) {
	__SIZE_TYPE__ n = 0;
	while (c[n])
		n++;
	return n;
}
#define vigil__cstrlen(c) ((vigil_u32)__builtin_strlen(c))
static inline vigil_u32 vigil__loopstrlen(const char *c) { return (vigil_u32)strlen(c); }

/* vigil__memeq compares 8, 4, 2 then 1 bytes at a time; with a constant n
 * it compiles to a few loads and no loop. */
VIGIL_INLINE int vigil__memeq(const char *a, const char *b, vigil_u32 n) {
	while (n >= 8) {
		vigil_u64 x, y;
		__builtin_memcpy(&x, a, 8);
		__builtin_memcpy(&y, b, 8);
		if (x != y)
			return 0;
		a += 8, b += 8, n -= 8;
	}
	if (n >= 4) {
		vigil_u32 x, y;
		__builtin_memcpy(&x, a, 4);
		__builtin_memcpy(&y, b, 4);
		if (x != y)
			return 0;
		a += 4, b += 4, n -= 4;
	}
	if (n >= 2) {
		vigil_u16 x, y;
		__builtin_memcpy(&x, a, 2);
		__builtin_memcpy(&y, b, 2);
		if (x != y)
			return 0;
		a += 2, b += 2, n -= 2;
	}
	return n == 0 || a[0] == b[0];
}
/* Each comparison exists as a function (usable as a pointer, e.g. with
 * vigil_list_any) and as a same-named macro that measures a literal at
 * compile time; the macro applies whenever the name is followed by '('. */
VIGIL_INLINE int vigil__eqn(vigil_str_t s, const char *c, vigil_u32 n) { return s.n == n && vigil__memeq(s.p, c, n); }
VIGIL_INLINE int vigil__prefixn(vigil_str_t s, const char *c, vigil_u32 n) { return s.n >= n && vigil__memeq(s.p, c, n); }
VIGIL_INLINE int vigil__suffixn(vigil_str_t s, const char *c, vigil_u32 n) {
	return s.n >= n && vigil__memeq(s.p + s.n - n, c, n);
}
VIGIL_INLINE int vigil__containsn(vigil_str_t s, const char *c, vigil_u32 n) {
	if (n == 0)
		return 1;
	for (vigil_u32 i = 0; i + n <= s.n; i++)
		if (s.p[i] == c[0] && vigil__memeq(s.p + i, c, n))
			return 1;
	return 0;
}
static inline int(vigil_str_eq)(vigil_str_t s, const char *c) { return vigil__eqn(s, c, vigil__loopstrlen(c)); }
static inline int(vigil_str_prefix)(vigil_str_t s, const char *c) { return vigil__prefixn(s, c, vigil__loopstrlen(c)); }
static inline int(vigil_str_suffix)(vigil_str_t s, const char *c) { return vigil__suffixn(s, c, vigil__loopstrlen(c)); }
static inline int(vigil_str_contains)(vigil_str_t s, const char *c) { return vigil__containsn(s, c, vigil__loopstrlen(c)); }
#define vigil_str_eq(s, c) vigil__eqn((s), (c), (vigil_u32)__builtin_strlen(c))
#define vigil_str_prefix(s, c) vigil__prefixn((s), (c), (vigil_u32)__builtin_strlen(c))
#define vigil_str_suffix(s, c) vigil__suffixn((s), (c), (vigil_u32)__builtin_strlen(c))
#define vigil_str_contains(s, c) vigil__containsn((s), (c), (vigil_u32)__builtin_strlen(c))
/* VIGIL__ORMAP(f, x, a...) expands to (f(x, a1) || f(x, a2) || ...), up to 64 items, so a
 * list match compiles to straight-line code with constant lengths: no loop
 * (every Wasm loop iteration costs a termination check in the host). */
#define VIGIL__NARG(...) VIGIL__NARG_(__VA_ARGS__, 64, 63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
#define VIGIL__NARG_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, _33, _34, _35, _36, _37, _38, _39, _40, _41, _42, _43, _44, _45, _46, _47, _48, _49, _50, _51, _52, _53, _54, _55, _56, _57, _58, _59, _60, _61, _62, _63, _64, n, ...) n
#define VIGIL__CAT(a, b) VIGIL__CAT_(a, b)
#define VIGIL__CAT_(a, b) a##b
#define VIGIL__ORMAP(f, x, ...) (VIGIL__CAT(VIGIL__OR, VIGIL__NARG(__VA_ARGS__))(f, x, __VA_ARGS__))
#define VIGIL__OR1(f, x, a) f(x, a)
#define VIGIL__OR2(f, x, a, ...) f(x, a) || VIGIL__OR1(f, x, __VA_ARGS__)
#define VIGIL__OR3(f, x, a, ...) f(x, a) || VIGIL__OR2(f, x, __VA_ARGS__)
#define VIGIL__OR4(f, x, a, ...) f(x, a) || VIGIL__OR3(f, x, __VA_ARGS__)
#define VIGIL__OR5(f, x, a, ...) f(x, a) || VIGIL__OR4(f, x, __VA_ARGS__)
#define VIGIL__OR6(f, x, a, ...) f(x, a) || VIGIL__OR5(f, x, __VA_ARGS__)
#define VIGIL__OR7(f, x, a, ...) f(x, a) || VIGIL__OR6(f, x, __VA_ARGS__)
#define VIGIL__OR8(f, x, a, ...) f(x, a) || VIGIL__OR7(f, x, __VA_ARGS__)
#define VIGIL__OR9(f, x, a, ...) f(x, a) || VIGIL__OR8(f, x, __VA_ARGS__)
#define VIGIL__OR10(f, x, a, ...) f(x, a) || VIGIL__OR9(f, x, __VA_ARGS__)
#define VIGIL__OR11(f, x, a, ...) f(x, a) || VIGIL__OR10(f, x, __VA_ARGS__)
#define VIGIL__OR12(f, x, a, ...) f(x, a) || VIGIL__OR11(f, x, __VA_ARGS__)
#define VIGIL__OR13(f, x, a, ...) f(x, a) || VIGIL__OR12(f, x, __VA_ARGS__)
#define VIGIL__OR14(f, x, a, ...) f(x, a) || VIGIL__OR13(f, x, __VA_ARGS__)
#define VIGIL__OR15(f, x, a, ...) f(x, a) || VIGIL__OR14(f, x, __VA_ARGS__)
#define VIGIL__OR16(f, x, a, ...) f(x, a) || VIGIL__OR15(f, x, __VA_ARGS__)
#define VIGIL__OR17(f, x, a, ...) f(x, a) || VIGIL__OR16(f, x, __VA_ARGS__)
#define VIGIL__OR18(f, x, a, ...) f(x, a) || VIGIL__OR17(f, x, __VA_ARGS__)
#define VIGIL__OR19(f, x, a, ...) f(x, a) || VIGIL__OR18(f, x, __VA_ARGS__)
#define VIGIL__OR20(f, x, a, ...) f(x, a) || VIGIL__OR19(f, x, __VA_ARGS__)
#define VIGIL__OR21(f, x, a, ...) f(x, a) || VIGIL__OR20(f, x, __VA_ARGS__)
#define VIGIL__OR22(f, x, a, ...) f(x, a) || VIGIL__OR21(f, x, __VA_ARGS__)
#define VIGIL__OR23(f, x, a, ...) f(x, a) || VIGIL__OR22(f, x, __VA_ARGS__)
#define VIGIL__OR24(f, x, a, ...) f(x, a) || VIGIL__OR23(f, x, __VA_ARGS__)
#define VIGIL__OR25(f, x, a, ...) f(x, a) || VIGIL__OR24(f, x, __VA_ARGS__)
#define VIGIL__OR26(f, x, a, ...) f(x, a) || VIGIL__OR25(f, x, __VA_ARGS__)
#define VIGIL__OR27(f, x, a, ...) f(x, a) || VIGIL__OR26(f, x, __VA_ARGS__)
#define VIGIL__OR28(f, x, a, ...) f(x, a) || VIGIL__OR27(f, x, __VA_ARGS__)
#define VIGIL__OR29(f, x, a, ...) f(x, a) || VIGIL__OR28(f, x, __VA_ARGS__)
#define VIGIL__OR30(f, x, a, ...) f(x, a) || VIGIL__OR29(f, x, __VA_ARGS__)
#define VIGIL__OR31(f, x, a, ...) f(x, a) || VIGIL__OR30(f, x, __VA_ARGS__)
#define VIGIL__OR32(f, x, a, ...) f(x, a) || VIGIL__OR31(f, x, __VA_ARGS__)
#define VIGIL__OR33(f, x, a, ...) f(x, a) || VIGIL__OR32(f, x, __VA_ARGS__)
#define VIGIL__OR34(f, x, a, ...) f(x, a) || VIGIL__OR33(f, x, __VA_ARGS__)
#define VIGIL__OR35(f, x, a, ...) f(x, a) || VIGIL__OR34(f, x, __VA_ARGS__)
#define VIGIL__OR36(f, x, a, ...) f(x, a) || VIGIL__OR35(f, x, __VA_ARGS__)
#define VIGIL__OR37(f, x, a, ...) f(x, a) || VIGIL__OR36(f, x, __VA_ARGS__)
#define VIGIL__OR38(f, x, a, ...) f(x, a) || VIGIL__OR37(f, x, __VA_ARGS__)
#define VIGIL__OR39(f, x, a, ...) f(x, a) || VIGIL__OR38(f, x, __VA_ARGS__)
#define VIGIL__OR40(f, x, a, ...) f(x, a) || VIGIL__OR39(f, x, __VA_ARGS__)
#define VIGIL__OR41(f, x, a, ...) f(x, a) || VIGIL__OR40(f, x, __VA_ARGS__)
#define VIGIL__OR42(f, x, a, ...) f(x, a) || VIGIL__OR41(f, x, __VA_ARGS__)
#define VIGIL__OR43(f, x, a, ...) f(x, a) || VIGIL__OR42(f, x, __VA_ARGS__)
#define VIGIL__OR44(f, x, a, ...) f(x, a) || VIGIL__OR43(f, x, __VA_ARGS__)
#define VIGIL__OR45(f, x, a, ...) f(x, a) || VIGIL__OR44(f, x, __VA_ARGS__)
#define VIGIL__OR46(f, x, a, ...) f(x, a) || VIGIL__OR45(f, x, __VA_ARGS__)
#define VIGIL__OR47(f, x, a, ...) f(x, a) || VIGIL__OR46(f, x, __VA_ARGS__)
#define VIGIL__OR48(f, x, a, ...) f(x, a) || VIGIL__OR47(f, x, __VA_ARGS__)
#define VIGIL__OR49(f, x, a, ...) f(x, a) || VIGIL__OR48(f, x, __VA_ARGS__)
#define VIGIL__OR50(f, x, a, ...) f(x, a) || VIGIL__OR49(f, x, __VA_ARGS__)
#define VIGIL__OR51(f, x, a, ...) f(x, a) || VIGIL__OR50(f, x, __VA_ARGS__)
#define VIGIL__OR52(f, x, a, ...) f(x, a) || VIGIL__OR51(f, x, __VA_ARGS__)
#define VIGIL__OR53(f, x, a, ...) f(x, a) || VIGIL__OR52(f, x, __VA_ARGS__)
#define VIGIL__OR54(f, x, a, ...) f(x, a) || VIGIL__OR53(f, x, __VA_ARGS__)
#define VIGIL__OR55(f, x, a, ...) f(x, a) || VIGIL__OR54(f, x, __VA_ARGS__)
#define VIGIL__OR56(f, x, a, ...) f(x, a) || VIGIL__OR55(f, x, __VA_ARGS__)
#define VIGIL__OR57(f, x, a, ...) f(x, a) || VIGIL__OR56(f, x, __VA_ARGS__)
#define VIGIL__OR58(f, x, a, ...) f(x, a) || VIGIL__OR57(f, x, __VA_ARGS__)
#define VIGIL__OR59(f, x, a, ...) f(x, a) || VIGIL__OR58(f, x, __VA_ARGS__)
#define VIGIL__OR60(f, x, a, ...) f(x, a) || VIGIL__OR59(f, x, __VA_ARGS__)
#define VIGIL__OR61(f, x, a, ...) f(x, a) || VIGIL__OR60(f, x, __VA_ARGS__)
#define VIGIL__OR62(f, x, a, ...) f(x, a) || VIGIL__OR61(f, x, __VA_ARGS__)
#define VIGIL__OR63(f, x, a, ...) f(x, a) || VIGIL__OR62(f, x, __VA_ARGS__)
#define VIGIL__OR64(f, x, a, ...) f(x, a) || VIGIL__OR63(f, x, __VA_ARGS__)
/* vigil_str_in(s, "a", "b", ...): s equals one of the literals.
 * vigil_str_prefix_in(s, "a", ...): s starts with one of them. */
#define vigil_str_in(s, ...) ({ vigil_str_t vigil__s = (s); VIGIL__ORMAP(vigil_str_eq, vigil__s, __VA_ARGS__); })
#define vigil_str_prefix_in(s, ...) ({ vigil_str_t vigil__s = (s); VIGIL__ORMAP(vigil_str_prefix, vigil__s, __VA_ARGS__); })
/* vigil_list_any: some item of the list satisfies pred(item, arg). */
static inline int vigil_list_any(vigil_list l, int (*pred)(vigil_str_t, const char *), const char *arg) {
	vigil_str_t s;
	while (vigil_list_next(&l, &s))
		if (pred(s, arg))
			return 1;
	return 0;
}

/* ---- verdicts ------------------------------------------------------------ */

#ifndef VIGIL_OUT_SIZE
#define VIGIL_OUT_SIZE (256 * 1024)
#endif

#define VIGIL_FIELDS(...) ((const vigil_u16[]){__VA_ARGS__, 0})
#define VIGIL_NO_FIELDS ((const vigil_u16[]){0})

__attribute__((import_module("vigil"), import_name("log"))) void vigil__host_log(vigil_u32 level, const char *p, vigil_u32 n);

/* vigil_log writes a NUL-terminated line to the guard's log (rate-limited). */
static inline void vigil_log(int level, const char *msg) { vigil__host_log((vigil_u32)level, msg, vigil__cstrlen(msg)); }

static vigil_u8 vigil__out[VIGIL_OUT_SIZE];
static vigil_u32 vigil__out_len, vigil__out_n, vigil__out_full, vigil__cur;

static inline void vigil__put16(vigil_u8 *p, vigil_u32 v) {
	p[0] = (vigil_u8)v;
	p[1] = (vigil_u8)(v >> 8);
}

/* vigil__emit appends one record for the current event (ABI.md, "Output
 * buffer"). No loops: the field count is found by a fully unrolled scan and
 * the copies are memory.copy, because each guest loop iteration costs a
 * termination check in the host. */
VIGIL_INLINE void vigil__emit(vigil_u8 type, vigil_u16 rule, vigil_u8 action, vigil_u8 prio, const char *msg, vigil_u32 ml,
			      const vigil_u16 *fields) {
	vigil_u32 nf = 0;
	if (fields) {
#pragma clang loop unroll(full)
		for (int i = 0; i < 16; i++) {
			if (fields[nf] == 0)
				break;
			nf++;
		}
	}
	if (ml > 1024)
		ml = 1024;
	vigil_u32 rl = 14 + 2 * nf + ml;
	if (vigil__out_len + rl > VIGIL_OUT_SIZE) {
		vigil__out_full++;
		return;
	}
	vigil_u8 *p = vigil__out + vigil__out_len;
	vigil__put16(p, rl);
	p[2] = type;
	p[3] = action;
	vigil__put16(p + 4, vigil__cur);
	vigil__put16(p + 6, vigil__cur >> 16);
	vigil__put16(p + 8, rule);
	p[10] = prio;
	p[11] = (vigil_u8)nf;
	vigil__put16(p + 12, ml);
	__builtin_memcpy(p + 14, fields, 2 * nf); /* wasm is little endian, as is the ABI */
	__builtin_memcpy(p + 14 + 2 * nf, msg, ml);
	vigil__out_len += rl;
	vigil__out_n++;
}

/* vigil_emit appends one record; type 1 verdict, 2 observation. */
#define vigil_emit(type, rule, action, prio, msg, fields) \
	vigil__emit((type), (rule), (action), (prio), (msg), (msg) ? (vigil_u32)__builtin_strlen(msg) : 0, (fields))
/* vigil_alert/kill/block(rule, prio, msg, fields): a verdict with that
 * action; prio may be VIGIL_DEFAULT. */
#define vigil_alert(rule, prio, msg, fields) vigil_emit(1, (rule), VIGIL_ACT_ALERT, (prio), (msg), (fields))
#define vigil_kill(rule, prio, msg, fields) vigil_emit(1, (rule), VIGIL_ACT_KILL, (prio), (msg), (fields))
#define vigil_block(rule, prio, msg, fields) vigil_emit(1, (rule), VIGIL_ACT_BLOCK, (prio), (msg), (fields))
/* vigil_fire(rule, msg, fields): the rule's default action and priority. */
#define vigil_fire(rule, msg, fields) vigil_emit(1, (rule), VIGIL_DEFAULT, VIGIL_DEFAULT, (msg), (fields))
/* vigil_observe(rule, key, fields): a fact for behavior detection. */
#define vigil_observe(rule, key, fields) vigil_emit(2, (rule), 0, 0, (key), (fields))

/* ---- exports (ABI) ------------------------------------------------------- */

#ifndef VIGIL_NO_EXPORTS

/* The one function a module writes. */
void vigil_rules(const vigil_event *e);

#define VIGIL_META(json)                                                                                   \
	static const char vigil__meta[] = json;                                                            \
	__attribute__((export_name("vigil_meta"))) vigil_u64 vigil_meta(void) {                            \
		return (vigil_u64)(sizeof(vigil__meta) - 1) << 32 | (vigil_u32)(__SIZE_TYPE__)vigil__meta; \
	}

__attribute__((export_name("vigil_abi_version"))) vigil_u32 vigil_abi_version(void) { return VIGIL_ABI_VERSION; }

static vigil_u8 *vigil__in;
static vigil_u32 vigil__in_cap;

/* vigil_input grows linear memory for the host's input buffer; memory never
 * moves in Wasm, so the buffer stays valid until the next call. */
__attribute__((export_name("vigil_input"))) vigil_u8 *vigil_input(vigil_u32 size) {
	if (size <= vigil__in_cap)
		return vigil__in;
	vigil_u32 pages = (size + 65535) / 65536;
	int old = __builtin_wasm_memory_grow(0, pages);
	if (old < 0)
		return 0;
	vigil__in = (vigil_u8 *)((__SIZE_TYPE__)old * 65536);
	vigil__in_cap = pages * 65536;
	return vigil__in;
}

__attribute__((export_name("vigil_evaluate"))) vigil_u64 vigil_evaluate(const vigil_u8 *p, vigil_u32 len, vigil_u32 n) {
	vigil__out_len = 4;
	vigil__out_n = 0;
	vigil__out_full = 0;
	vigil_u32 off = 0;
	for (vigil_u32 i = 0; i < n && off + 8 <= len; i++) {
		vigil_event e;
		e.p = p + off;
		e.len = vigil__u32(e.p);
		if (e.len < 8 || e.len > len - off)
			break;
		e.kind = vigil__u16(e.p + 4);
		e.index = i;
		vigil__cur = i;
		vigil_rules(&e);
		off += e.len;
	}
	if (vigil__out_full)
		vigil_log(2, "vigil: output buffer full, verdicts dropped");
	if (vigil__out_n == 0)
		return 0;
	vigil__put16(vigil__out, vigil__out_n);
	vigil__put16(vigil__out + 2, vigil__out_n >> 16);
	return (vigil_u64)vigil__out_len << 32 | (vigil_u32)(__SIZE_TYPE__)vigil__out;
}

#endif /* VIGIL_NO_EXPORTS */
#endif /* VIGIL_H */
