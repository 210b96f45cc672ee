/* Shared by every Vigil BPF object (sensor, enforce). Keep this header small
 * and stable: other objects include it read-only.
 *
 * Event kinds mirror guard/event.Kind; the numbers are part of the Wasm ABI
 * and never change meaning. */
#pragma once

enum vigil_kind {
	EV_EXEC = 1,
	EV_FORK = 2,
	EV_EXIT = 3,

	EV_OPEN = 10,
	EV_UNLINK = 11,
	EV_RENAME = 12,
	EV_LINK = 13,
	EV_SYMLINK = 14,
	EV_CHMOD = 15,

	EV_CONNECT = 20,
	EV_ACCEPT = 21,
	EV_BIND = 22,
	EV_LISTEN = 23,
	EV_PACKET_SOCKET = 24,
	EV_DUP_SOCKET = 25,

	EV_SETUID = 30,
	EV_SETGID = 31,
	EV_CAPSET = 32,
	EV_PTRACE = 33,
	EV_MOUNT = 34,
	EV_UMOUNT = 35,
	EV_UNSHARE = 36,
	EV_SETNS = 37,
	EV_MODULE_LOAD = 38,
	EV_MEMFD = 39,

	/* Kinds are below this bound so per-kind counters fit one array. */
	EV_KIND_MAX = 64,
};

/* Constants from uapi headers that vmlinux.h does not carry. */
#define VIGIL_AT_FDCWD -100
#define VIGIL_AF_UNIX 1
#define VIGIL_AF_INET 2
#define VIGIL_AF_INET6 10
#define VIGIL_AF_PACKET 17
#define VIGIL_S_IFMT 00170000
#define VIGIL_S_IFSOCK 0140000
