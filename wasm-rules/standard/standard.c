/*
 * Vigil's standard rule pack: one small C module carrying the "never in
 * production" floor. It covers the behaviors of Falco's stable rules plus a
 * few the brief asks for (exec from /tmp, cron, user management, package
 * managers, mining pools, writes below system directories).
 *
 * Speed: each event's records are walked ONCE into a struct of the fields
 * the pack reads (load below); rules then test plain values. Rules are
 * grouped by event kind so an event only meets the rules that can fire.
 *
 * Rule indexes below must match the order of the "rules" array in META.
 */
#include "vigil.h"

enum {
	R_TERMINAL_SHELL,
	R_SHELL_UNTRUSTED_PARENT,
	R_SYSTEM_USER_INTERACTIVE,
	R_READ_SENSITIVE,
	R_READ_SSH_KEYS,
	R_READ_CLOUD_CREDS,
	R_READ_SA_TOKEN,
	R_DIR_TRAVERSAL,
	R_WRITE_ETC,
	R_WRITE_BIN,
	R_WRITE_USR,
	R_WRITE_ROOT,
	R_SYMLINK_SENSITIVE,
	R_HARDLINK_SENSITIVE,
	R_CLEAR_LOGS,
	R_BULK_REMOVE,
	R_SEARCH_KEYS,
	R_FIND_AWS,
	R_EXEC_DEV_SHM,
	R_EXEC_TMP,
	R_MEMFD_EXEC,
	R_DROP_EXEC,
	R_PACKET_SOCKET,
	R_PTRACE_ATTACH,
	R_PTRACE_ANTIDEBUG,
	R_KMOD,
	R_SETUID_BIT,
	R_NON_SUDO_SETUID,
	R_RELEASE_AGENT,
	R_MOUNT_PRIV,
	R_DEBUGFS,
	R_NETCAT_RCE,
	R_REVERSE_SHELL,
	R_K8S_API,
	R_MINER,
	R_PKG_MGR,
	R_CRON,
	R_USER_MGMT,
	R_SSH_NONSTD_PORT,
	R_CLOUD_METADATA,
};

#define RULE(name, prio, kinds, tags, desc) \
	"{\"name\":\"" name "\",\"version\":\"1.0.0\",\"priority\":\"" prio "\",\"kinds\":[" kinds "],\"tags\":[" tags "],\"description\":\"" desc "\"}"

VIGIL_META("{\"abi\":1,\"module\":\"vigil-standard\",\"version\":\"1.0.0\","
	   "\"description\":\"Vigil standard rule pack: the never-in-production floor.\",\"rules\":["
	   RULE("Terminal shell in container", "Warning", "\"exec\"", "\"container\",\"shell\",\"mitre_execution\",\"T1059\"",
		"A shell (bash, sh, zsh) was started inside a container.") ","
	   RULE("Shell spawned by untrusted parent", "Notice", "\"exec\"", "\"shell\",\"mitre_execution\",\"T1059.004\"",
		"A web, database or runtime server process spawned a shell.") ","
	   RULE("System user interactive", "Informational", "\"exec\"", "\"users\",\"mitre_execution\",\"T1059\"",
		"A system account (uid 1-999) ran a program on a terminal.") ","
	   RULE("Read sensitive file untrusted", "Warning", "\"open\"", "\"filesystem\",\"mitre_credential_access\",\"T1555\"",
		"An untrusted program read shadow, sudoers or PAM configuration.") ","
	   RULE("Read SSH private keys", "Warning", "\"open\"", "\"filesystem\",\"mitre_credential_access\",\"T1552.004\"",
		"A program other than ssh tooling read SSH private keys.") ","
	   RULE("Read cloud credentials", "Warning", "\"open\"", "\"filesystem\",\"cloud\",\"mitre_credential_access\",\"T1552.001\"",
		"A program read AWS, GCP or Azure credential files.") ","
	   RULE("Read service account token by shell or tool", "Warning", "\"open\"", "\"k8s\",\"mitre_credential_access\",\"T1528\"",
		"A shell or file tool read a Kubernetes service-account token.") ","
	   RULE("Directory traversal monitored file read", "Warning", "\"open\"", "\"filesystem\",\"mitre_credential_access\",\"T1555\"",
		"A sensitive file was opened through a path containing ../.") ","
	   RULE("Write below etc", "Error", "\"open\",\"rename\",\"link\",\"symlink\"", "\"filesystem\",\"mitre_persistence\",\"T1098\"",
		"A program other than a package manager wrote below /etc.") ","
	   RULE("Write below binary dir", "Error", "\"open\",\"rename\",\"link\",\"symlink\"", "\"filesystem\",\"mitre_persistence\",\"T1543\"",
		"A program other than a package manager wrote below a binary directory.") ","
	   RULE("Write below usr", "Error", "\"open\",\"rename\"", "\"filesystem\",\"mitre_persistence\",\"T1543\"",
		"A program other than a package manager wrote below /usr.") ","
	   RULE("Write below root", "Error", "\"open\",\"rename\"", "\"filesystem\",\"mitre_persistence\",\"T1098\"",
		"A program wrote below /root or into / itself.") ","
	   RULE("Create symlink over sensitive files", "Warning", "\"symlink\"", "\"filesystem\",\"mitre_credential_access\",\"T1555\"",
		"A symlink to or over a sensitive file was created.") ","
	   RULE("Create hardlink over sensitive files", "Warning", "\"link\"", "\"filesystem\",\"mitre_credential_access\",\"T1555\"",
		"A hard link to or over a sensitive file was created.") ","
	   RULE("Clear log activities", "Warning", "\"open\",\"unlink\"", "\"filesystem\",\"mitre_defense_evasion\",\"T1070\"",
		"A log file or shell history was truncated or deleted.") ","
	   RULE("Remove bulk data from disk", "Critical", "\"exec\"", "\"filesystem\",\"mitre_impact\",\"T1485\"",
		"shred, wipe, mkfs or dd onto a block device was run.") ","
	   RULE("Search private keys or passwords", "Warning", "\"exec\"", "\"process\",\"mitre_credential_access\",\"T1552.001\"",
		"find or grep searched for private keys or passwords.") ","
	   RULE("Find AWS credentials", "Notice", "\"exec\"", "\"process\",\"aws\",\"mitre_credential_access\",\"T1552\"",
		"find or grep searched for AWS credentials.") ","
	   RULE("Execution from /dev/shm", "Warning", "\"exec\"", "\"process\",\"mitre_execution\",\"T1059.004\"",
		"A program was executed from /dev/shm.") ","
	   RULE("Execution from /tmp in container", "Warning", "\"exec\"", "\"container\",\"process\",\"mitre_execution\",\"T1059\"",
		"A container executed a program from /tmp or /var/tmp.") ","
	   RULE("Fileless execution via memfd_create", "Critical", "\"exec\"", "\"process\",\"mitre_defense_evasion\",\"T1620\"",
		"A program was executed from a memfd (no file on disk).") ","
	   RULE("Drop and execute new binary in container", "Critical", "\"exec\"", "\"container\",\"process\",\"mitre_persistence\",\"TA0003\"",
		"A container executed a binary written after it started (overlay upper layer).") ","
	   RULE("Packet socket created in container", "Notice", "\"packet_socket\"", "\"container\",\"network\",\"mitre_credential_access\",\"T1040\"",
		"A container opened an AF_PACKET socket (sniffing or spoofing).") ","
	   RULE("PTRACE attached to process", "Warning", "\"ptrace\"", "\"process\",\"mitre_privilege_escalation\",\"T1055.008\"",
		"A process attached to or wrote into another process with ptrace.") ","
	   RULE("PTRACE anti-debug attempt", "Notice", "\"ptrace\"", "\"process\",\"mitre_defense_evasion\",\"T1622\"",
		"A process called PTRACE_TRACEME to block debuggers.") ","
	   RULE("Linux kernel module injection detected", "Warning", "\"module_load\"", "\"host\",\"mitre_persistence\",\"T1547.006\"",
		"A kernel module was loaded.") ","
	   RULE("Set setuid or setgid bit", "Notice", "\"chmod\"", "\"filesystem\",\"mitre_privilege_escalation\",\"T1548.001\"",
		"chmod set the setuid or setgid bit.") ","
	   RULE("Non sudo setuid", "Notice", "\"setuid\"", "\"users\",\"mitre_privilege_escalation\",\"T1548.001\"",
		"A non-root process other than sudo/su changed its uid to root.") ","
	   RULE("Detect release_agent file container escapes", "Critical", "\"open\"", "\"container\",\"mitre_privilege_escalation\",\"T1611\"",
		"A process wrote a cgroup release_agent or notify_on_release file.") ","
	   RULE("Mount launched in privileged container", "Warning", "\"mount\"", "\"container\",\"mitre_privilege_escalation\",\"T1611\"",
		"A container mounted a filesystem.") ","
	   RULE("Debugfs launched in privileged container", "Warning", "\"exec\"", "\"container\",\"mitre_privilege_escalation\",\"T1611\"",
		"debugfs was run inside a container.") ","
	   RULE("Netcat remote code execution in container", "Warning", "\"exec\"", "\"container\",\"network\",\"mitre_execution\",\"T1059\"",
		"netcat was run with a command-execution option inside a container.") ","
	   RULE("Redirect STDOUT/STDIN to network connection", "Warning", "\"dup_socket\"", "\"network\",\"mitre_execution\",\"T1059\"",
		"A socket was duplicated onto stdin, stdout or stderr (reverse shell).") ","
	   RULE("Contact K8S API server from container", "Notice", "\"connect\"", "\"container\",\"k8s\",\"mitre_discovery\",\"T1565\"",
		"A container connected to the Kubernetes API server.") ","
	   RULE("Detect crypto miners", "Critical", "\"connect\",\"exec\"", "\"network\",\"mitre_impact\",\"T1496\"",
		"A connection to a common mining-pool port, or a known miner binary.") ","
	   RULE("Package management process launched in container", "Error", "\"exec\"", "\"container\",\"process\",\"mitre_persistence\",\"T1072\"",
		"A package manager ran inside a container.") ","
	   RULE("Schedule cron jobs", "Notice", "\"open\",\"exec\"", "\"filesystem\",\"mitre_persistence\",\"T1053.003\"",
		"A crontab was edited or a file below a cron directory was written.") ","
	   RULE("User mgmt binaries", "Notice", "\"exec\"", "\"users\",\"mitre_persistence\",\"T1098\"",
		"A user-management program ran outside a package manager.") ","
	   RULE("Disallowed SSH connection non standard port", "Notice", "\"connect\"", "\"network\",\"mitre_execution\",\"T1059\"",
		"An SSH client connected to a port other than 22.") ","
	   RULE("Contact cloud metadata service from container", "Notice", "\"connect\"", "\"container\",\"cloud\",\"mitre_discovery\",\"T1552.005\"",
		"A container connected to the cloud instance metadata service.")
	   "]}")

/* Open flags (x86-64/arm64 Linux values). */
#define O_ACCMODE 03
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000

/* The fields the pack reads, filled by one walk over the records. */
struct ev {
	vigil_str_t name, exe, pname, path, new_path, cid, op, fstype;
	vigil_list args, ancestors;
	vigil_u64 flags, mode, tty, uid, euid, dport;
	vigil_i64 id[3], ptrace_req, fd, ret;
	int memfd, upper, has_id[3];
	vigil_u8 daddr[16];
	vigil_u32 daddr_len;
};

static void load(const vigil_event *e, struct ev *v) {
	__builtin_memset(v, 0, sizeof *v);
	vigil_u32 off = 8, n = vigil__u16(e->p + 6);
	/* Unrolled: the host charges a termination check per loop back-edge. */
#pragma clang loop unroll_count(8)
	for (vigil_u32 i = 0; i < n && off + 8 <= e->len; i++) {
		vigil_u16 id = vigil__u16(e->p + off);
		vigil_u32 l = vigil__u32(e->p + off + 4);
		if (l > e->len - off - 8)
			return;
		const vigil_u8 *p = e->p + off + 8;
		vigil_str_t s = {(const char *)p, l};
		vigil_list ls = {p, l};
		vigil_u64 u = l == 8 ? vigil__u64(p) : 0;
		off += 8 + l;
		if (vigil__u16(e->p + off - 8 - l + 2) != 0)
			continue; /* repeated objects are not used by this pack */
		switch (id) {
		case VIGIL_F_EVT_RET: v->ret = (vigil_i64)u; break;
		case VIGIL_F_PROC_NAME: v->name = s; break;
		case VIGIL_F_PROC_EXE: v->exe = s; break;
		case VIGIL_F_PROC_ARGS: v->args = ls; break;
		case VIGIL_F_PROC_TTY: v->tty = u; break;
		case VIGIL_F_PROC_EXE_MEMFD: v->memfd = l == 1 && p[0] == 1; break;
		case VIGIL_F_PROC_EXE_UPPER: v->upper = l == 1 && p[0] == 1; break;
		case VIGIL_F_PROC_PNAME: v->pname = s; break;
		case VIGIL_F_PROC_ANCESTORS: v->ancestors = ls; break;
		case VIGIL_F_USER_UID: v->uid = u; break;
		case VIGIL_F_USER_EUID: v->euid = u; break;
		case VIGIL_F_CONTAINER_ID: v->cid = s; break;
		case VIGIL_F_FILE_PATH: v->path = s; break;
		case VIGIL_F_FILE_NEW_PATH: v->new_path = s; break;
		case VIGIL_F_FILE_FLAGS: v->flags = u; break;
		case VIGIL_F_FILE_MODE: v->mode = u; break;
		case VIGIL_F_NET_DST_ADDR:
			if (l == 4 || l == 16) {
				for (vigil_u32 j = 0; j < l; j++)
					v->daddr[j] = p[j];
				v->daddr_len = l;
			}
			break;
		case VIGIL_F_NET_DST_PORT: v->dport = u; break;
		case VIGIL_F_NET_FD: v->fd = (vigil_i64)u; break;
		case VIGIL_F_PRIV_OP: v->op = s; break;
		case VIGIL_F_PRIV_ID0: v->id[0] = (vigil_i64)u; v->has_id[0] = 1; break;
		case VIGIL_F_PRIV_ID1: v->id[1] = (vigil_i64)u; v->has_id[1] = 1; break;
		case VIGIL_F_PRIV_ID2: v->id[2] = (vigil_i64)u; v->has_id[2] = 1; break;
		case VIGIL_F_PRIV_PTRACE_REQUEST: v->ptrace_req = (vigil_i64)u; break;
		case VIGIL_F_PRIV_FSTYPE: v->fstype = s; break;
		}
	}
}

/* ---- lists --------------------------------------------------------------- */

static int is_shell(vigil_str_t s) {
	return vigil_str_in(s, "bash", "sh", "zsh", "dash", "ash", "ksh", "csh", "tcsh", "fish", "busybox");
}
static int is_seed_shell(vigil_str_t s) { return vigil_str_in(s, "bash", "sh", "zsh"); }

static int is_shell_spawner(vigil_str_t s) {
	return vigil_str_in(s, "nginx", "httpd", "apache2", "lighttpd", "caddy", "envoy", "haproxy", "php-fpm", "node",
			    "java", "tomcat", "catalina.sh", "mysqld", "mariadbd", "postgres", "redis-server", "mongod",
			    "memcached", "gunicorn", "uwsgi", "puma", "unicorn");
}

static int is_pkg_mgr(vigil_str_t s) {
	return vigil_str_in(s, "dpkg", "apt", "apt-get", "aptitude", "yum", "dnf", "microdnf", "rpm", "apk", "zypper",
			    "pacman", "pip", "pip3", "gem", "npm", "yarn", "unattended-upgr", "dpkg-preconfigu", "update-alternat",
			    "snapd", "flatpak");
}

static int is_etc_writer(vigil_str_t s) {
	return is_pkg_mgr(s) || vigil_str_in(s, "useradd", "usermod", "userdel", "groupadd", "groupmod", "passwd", "chpasswd",
					     "chage", "vipw", "vigr", "adduser", "deluser", "systemd", "systemd-tmpfile",
					     "systemd-resolve", "NetworkManager", "dhclient", "dhcpcd", "ldconfig", "ca-certificates",
					     "update-ca-certif", "kubelet", "containerd", "dockerd", "runc", "sshd", "cloud-init",
					     "chronyd", "locale-gen", "vigil");
}

static int is_trusted_secret_reader(vigil_str_t s) {
	return vigil_str_in(s, "sshd", "sudo", "su", "login", "passwd", "chpasswd", "chage", "useradd", "usermod", "userdel",
			    "unix_chkpwd", "systemd", "systemd-logind", "systemd-userdb", "cron", "crond", "atd", "polkitd",
			    "accounts-daemon", "kubelet", "containerd", "dockerd", "vigil", "nscd", "sssd", "dpkg", "rpm",
			    "apt-get", "yum", "dnf", "apk");
}

static int is_ssh_tool(vigil_str_t s) {
	return vigil_str_in(s, "ssh", "sshd", "ssh-agent", "ssh-add", "ssh-keygen", "ssh-keyscan", "scp", "sftp", "sftp-server",
			    "git", "rsync", "ansible", "sshd-session");
}

static int is_file_tool_or_shell(vigil_str_t s) {
	return is_shell(s) || vigil_str_in(s, "cat", "head", "tail", "less", "more", "base64", "xxd", "od", "strings", "cp",
					   "grep", "egrep", "awk", "sed", "curl", "wget", "nc", "ncat", "python", "python3",
					   "perl", "vi", "vim", "nano");
}

static int write_open(vigil_u64 flags) { return (flags & O_ACCMODE) != 0 || (flags & (O_CREAT | O_TRUNC)) != 0; }
static int read_open(vigil_u64 flags) { return (flags & O_ACCMODE) == 0 || (flags & O_ACCMODE) == O_RDWR; }

/* Sensitive files in the Falco sense: credentials and authorization. */
static int sensitive_auth(vigil_str_t p) {
	return vigil_str_in(p, "/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers", "/etc/pam.conf",
			    "/etc/security/pwquality.conf", "/etc/security/opasswd") ||
	       vigil_str_prefix_in(p, "/etc/sudoers.d/", "/etc/pam.d/");
}

static int ssh_private_key(vigil_str_t p) {
	if (vigil_str_prefix(p, "/etc/ssh/ssh_host_") && vigil_str_suffix(p, "_key"))
		return 1;
	if (!vigil_str_contains(p, "/.ssh/"))
		return 0;
	return vigil_str_contains(p, "/.ssh/id_") && !vigil_str_suffix(p, ".pub");
}

static int cloud_credentials(vigil_str_t p) {
	return vigil_str_suffix(p, "/.aws/credentials") || vigil_str_suffix(p, "/.aws/config") ||
	       vigil_str_contains(p, "/.config/gcloud/") || vigil_str_contains(p, "/.azure/") ||
	       vigil_str_suffix(p, "/.docker/config.json") || vigil_str_suffix(p, "/.kube/config");
}

static int sa_token(vigil_str_t p) {
	return vigil_str_suffix(p, "/secrets/kubernetes.io/serviceaccount/token") ||
	       vigil_str_prefix(p, "/var/run/secrets/eks.amazonaws.com/serviceaccount/");
}

static int sensitive_any(vigil_str_t p) {
	return sensitive_auth(p) || vigil_str_eq(p, "/etc/passwd") || vigil_str_prefix(p, "/root/.ssh/") || ssh_private_key(p);
}

static int below_bin(vigil_str_t p) {
	return vigil_str_prefix_in(p, "/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/",
				   "/usr/libexec/");
}

static int log_file(vigil_str_t p) {
	return vigil_str_prefix(p, "/var/log/") || vigil_str_suffix(p, "/.bash_history") || vigil_str_suffix(p, "/.zsh_history") ||
	       vigil_str_suffix(p, "/.ash_history") || vigil_str_suffix(p, "/.sh_history");
}

static int arg_has(vigil_list args, const char *needle) { return vigil_list_any(args, vigil_str_contains, needle); }
static int arg_is(vigil_list args, const char *a) { return vigil_list_any(args, vigil_str_eq, a); }
static int arg_prefix(vigil_list args, const char *a) { return vigil_list_any(args, vigil_str_prefix, a); }

static const vigil_u16 *const F_PROC = VIGIL_FIELDS(VIGIL_F_PROC_NAME, VIGIL_F_PROC_EXE, VIGIL_F_PROC_ARGS, VIGIL_F_PROC_PNAME,
						    VIGIL_F_USER_UID, VIGIL_F_CONTAINER_ID, VIGIL_F_CONTAINER_IMAGE, VIGIL_F_K8S_NS,
						    VIGIL_F_K8S_POD);
static const vigil_u16 *const F_FILE = VIGIL_FIELDS(VIGIL_F_FILE_PATH, VIGIL_F_FILE_NEW_PATH, VIGIL_F_FILE_FLAGS, VIGIL_F_PROC_NAME,
						    VIGIL_F_PROC_EXE, VIGIL_F_PROC_PNAME, VIGIL_F_USER_UID, VIGIL_F_CONTAINER_ID,
						    VIGIL_F_CONTAINER_IMAGE, VIGIL_F_K8S_NS, VIGIL_F_K8S_POD);
static const vigil_u16 *const F_NET = VIGIL_FIELDS(VIGIL_F_NET_DST_ADDR, VIGIL_F_NET_DST_PORT, VIGIL_F_NET_FD, VIGIL_F_PROC_NAME,
						   VIGIL_F_PROC_EXE, VIGIL_F_PROC_PNAME, VIGIL_F_CONTAINER_ID, VIGIL_F_CONTAINER_IMAGE,
						   VIGIL_F_K8S_NS, VIGIL_F_K8S_POD);
static const vigil_u16 *const F_PRIV = VIGIL_FIELDS(VIGIL_F_PRIV_OP, VIGIL_F_PRIV_ID0, VIGIL_F_PRIV_ID1, VIGIL_F_PRIV_ID2,
						    VIGIL_F_PRIV_TARGET_PID, VIGIL_F_PRIV_PTRACE_REQUEST, VIGIL_F_PRIV_NAME,
						    VIGIL_F_PRIV_MOUNT_SOURCE, VIGIL_F_PRIV_MOUNT_TARGET, VIGIL_F_PRIV_FSTYPE,
						    VIGIL_F_PROC_NAME, VIGIL_F_PROC_EXE, VIGIL_F_USER_UID, VIGIL_F_USER_EUID,
						    VIGIL_F_CONTAINER_ID, VIGIL_F_K8S_NS, VIGIL_F_K8S_POD);

/* ---- rules by kind -------------------------------------------------------- */

/* The OCI runtime setting a container up from inside its cgroup: runc's
 * init stage names itself "runc:[2:INIT]" (and "runc:[1:CHILD]" before it)
 * and is the host's runc binary; crun's is "crun". Both the name and the
 * executable must match, so renaming a process alone does not hide a mount. */
static int oci_runtime_init(struct ev *v) {
	return (vigil_str_prefix(v->name, "runc:[") && (vigil_str_suffix(v->exe, "/runc") || vigil_str_eq(v->exe, "runc"))) ||
	       (vigil_str_eq(v->name, "crun") && vigil_str_suffix(v->exe, "/crun"));
}

static void on_exec(struct ev *v) {
	int container = v->cid.n > 0;
	vigil_str_t n = v->name;

	if (container && is_seed_shell(n))
		vigil_fire(R_TERMINAL_SHELL, "Shell spawned in a container", F_PROC);
	if (is_shell(n) && is_shell_spawner(v->pname))
		vigil_fire(R_SHELL_UNTRUSTED_PARENT, "Shell spawned by a server process", F_PROC);
	if (v->uid >= 1 && v->uid < 1000 && v->tty != 0)
		vigil_fire(R_SYSTEM_USER_INTERACTIVE, "System user ran an interactive command", F_PROC);

	if (vigil_str_in(n, "shred", "wipe", "srm") || vigil_str_prefix(n, "mkfs") ||
	    (vigil_str_eq(n, "dd") && arg_prefix(v->args, "of=/dev/") && !arg_is(v->args, "of=/dev/null")))
		vigil_fire(R_BULK_REMOVE, "Bulk data removal from disk", F_PROC);

	if (vigil_str_in(n, "find", "grep", "egrep", "fgrep", "rg", "locate", "ag")) {
		if (arg_has(v->args, "id_rsa") || arg_has(v->args, "id_dsa") || arg_has(v->args, "id_ecdsa") ||
		    arg_has(v->args, "id_ed25519") || arg_has(v->args, ".pem") || arg_has(v->args, "PRIVATE KEY") ||
		    arg_has(v->args, "pass") || arg_has(v->args, "secret"))
			vigil_fire(R_SEARCH_KEYS, "Search for private keys or passwords", F_PROC);
		if (arg_has(v->args, ".aws") || arg_has(v->args, "aws_access_key_id") ||
		    arg_has(v->args, "aws_secret_access_key") || arg_has(v->args, "aws_session_token") || arg_has(v->args, "AKIA"))
			vigil_fire(R_FIND_AWS, "Search for AWS credentials", F_PROC);
	}

	if (vigil_str_prefix(v->exe, "/dev/shm/"))
		vigil_fire(R_EXEC_DEV_SHM, "Program executed from /dev/shm", F_PROC);
	if (container && vigil_str_prefix_in(v->exe, "/tmp/", "/var/tmp/"))
		vigil_fire(R_EXEC_TMP, "Program executed from /tmp in a container", F_PROC);
	if (v->memfd)
		vigil_fire(R_MEMFD_EXEC, "Fileless execution from a memfd", F_PROC);
	if (container && v->upper)
		vigil_fire(R_DROP_EXEC, "Executed a binary not in the container image", F_PROC);
	if (container && vigil_str_eq(n, "debugfs"))
		vigil_fire(R_DEBUGFS, "debugfs launched in a container", F_PROC);
	if (container && vigil_str_in(n, "nc", "ncat", "netcat", "nc.openbsd", "nc.traditional") &&
	    (arg_is(v->args, "-e") || arg_is(v->args, "-c") || arg_prefix(v->args, "--exec") ||
	     arg_prefix(v->args, "--sh-exec") || arg_prefix(v->args, "--lua-exec")))
		vigil_fire(R_NETCAT_RCE, "Netcat runs a command for a remote peer", F_PROC);
	if (vigil_str_in(n, "xmrig", "minerd", "cpuminer", "cgminer", "bfgminer", "ethminer", "nbminer", "t-rex", "xmr-stak",
			 "ccminer", "lolminer"))
		vigil_fire(R_MINER, "Crypto-miner binary executed", F_PROC);
	if (container && is_pkg_mgr(n))
		vigil_fire(R_PKG_MGR, "Package manager launched in a container", F_PROC);
	if (vigil_str_eq(n, "crontab") && !arg_is(v->args, "-l"))
		vigil_fire(R_CRON, "crontab edited", F_PROC);
	if (vigil_str_in(n, "useradd", "userdel", "usermod", "groupadd", "groupdel", "groupmod", "adduser", "deluser",
			 "addgroup", "delgroup", "chpasswd", "passwd", "chage", "vipw", "vigr", "newusers", "gpasswd") &&
	    !is_pkg_mgr(v->pname))
		vigil_fire(R_USER_MGMT, "User-management program run", F_PROC);
}

/* top_level: a path directly below /, such as /evil.sh. */
static int top_level(vigil_str_t p) {
	if (p.n < 2 || p.p[0] != '/')
		return 0;
	vigil_str_t rest = {p.p + 1, p.n - 1};
	return !vigil_str_contains(rest, "/");
}

static void write_checks(struct ev *v, vigil_str_t p) {
	if (vigil_str_prefix(p, "/etc/") && !is_etc_writer(v->name) && !vigil_str_prefix(p, "/etc/cron"))
		vigil_fire(R_WRITE_ETC, "File below /etc opened for writing", F_FILE);
	if (below_bin(p) && !is_pkg_mgr(v->name))
		vigil_fire(R_WRITE_BIN, "File below a binary directory opened for writing", F_FILE);
	else if (vigil_str_prefix(p, "/usr/") && !is_pkg_mgr(v->name) && !vigil_str_prefix(p, "/usr/local/share/ca-certificates/"))
		vigil_fire(R_WRITE_USR, "File below /usr opened for writing", F_FILE);
	if ((vigil_str_prefix(p, "/root/") && !vigil_str_prefix(p, "/root/.cache/") && !vigil_str_in(p, "/root/.bash_history", "/root/.viminfo", "/root/.lesshst", "/root/.wget-hsts", "/root/.python_history")) ||
	    top_level(p))
		vigil_fire(R_WRITE_ROOT, "File below /root or / opened for writing", F_FILE);
	if (vigil_str_prefix_in(p, "/etc/cron", "/var/spool/cron/", "/etc/anacrontab") && !is_pkg_mgr(v->name))
		vigil_fire(R_CRON, "File below a cron directory written", F_FILE);
}

static void on_open(struct ev *v) {
	vigil_str_t p = v->path;
	if (read_open(v->flags)) {
		if (sensitive_auth(p) && !is_trusted_secret_reader(v->name))
			vigil_fire(R_READ_SENSITIVE, "Sensitive file opened for reading by an untrusted program", F_FILE);
		if (ssh_private_key(p) && !is_ssh_tool(v->name))
			vigil_fire(R_READ_SSH_KEYS, "SSH private key read", F_FILE);
		if (cloud_credentials(p))
			vigil_fire(R_READ_CLOUD_CREDS, "Cloud credentials read", F_FILE);
		if (sa_token(p) && is_file_tool_or_shell(v->name))
			vigil_fire(R_READ_SA_TOKEN, "Service-account token read by a shell or tool", F_FILE);
		if (vigil_str_contains(p, "../") &&
		    (vigil_str_suffix(p, "etc/shadow") || vigil_str_suffix(p, "etc/passwd") || vigil_str_suffix(p, "etc/sudoers") ||
		     vigil_str_contains(p, "/.ssh/")))
			vigil_fire(R_DIR_TRAVERSAL, "Sensitive file read through ../ traversal", F_FILE);
	}
	if (write_open(v->flags)) {
		write_checks(v, p);
		if (vigil_str_suffix(p, "/release_agent") || vigil_str_suffix(p, "/notify_on_release"))
			vigil_fire(R_RELEASE_AGENT, "cgroup release_agent written (container escape)", F_FILE);
	}
	if ((v->flags & O_TRUNC) && log_file(p))
		vigil_fire(R_CLEAR_LOGS, "Log file truncated", F_FILE);
}

static void on_link(struct ev *v, int kind) {
	/* file.path is the existing target, file.new_path the link created. */
	if (sensitive_any(v->path) || sensitive_any(v->new_path))
		vigil_fire(kind == VIGIL_KIND_SYMLINK ? R_SYMLINK_SENSITIVE : R_HARDLINK_SENSITIVE,
			   kind == VIGIL_KIND_SYMLINK ? "Symlink created over a sensitive file" : "Hard link created over a sensitive file",
			   F_FILE);
	write_checks(v, v->new_path);
}

static int v4(struct ev *v, int a, int b, int c, int d) {
	return v->daddr_len == 4 && v->daddr[0] == a && v->daddr[1] == b && v->daddr[2] == c && v->daddr[3] == d;
}

static void on_connect(struct ev *v) {
	int container = v->cid.n > 0;
	vigil_u64 port = v->dport;
	if (container && (port == 6443 || (port == 443 && v4(v, 10, 96, 0, 1))) &&
	    !vigil_str_in(v->name, "kube-proxy", "coredns", "calico-node", "cilium-agent", "flanneld", "vigil"))
		vigil_fire(R_K8S_API, "Container contacted the Kubernetes API server", F_NET);
	switch (port) {
	case 3333: case 3334: case 3335: case 3336: case 3357: case 4444: case 5555: case 5556: case 5588: case 5730:
	case 6099: case 6666: case 7777: case 7778: case 8899: case 9332: case 9999: case 14433: case 14444: case 45560:
	case 45700:
		vigil_fire(R_MINER, "Connection to a common mining-pool port", F_NET);
	}
	if (vigil_str_in(v->name, "ssh", "scp", "sftp") && port != 22 && port != 0)
		vigil_fire(R_SSH_NONSTD_PORT, "SSH client connected to a non-standard port", F_NET);
	if (container && v4(v, 169, 254, 169, 254))
		vigil_fire(R_CLOUD_METADATA, "Container contacted the cloud metadata service", F_NET);
}

static void on_setuid(struct ev *v) {
	int to_root = 0;
	for (int i = 0; i < 3; i++)
		to_root |= v->id[i] == 0; /* absent = 0 (the wire omits zeros); -1 = unchanged */
	if (to_root && v->euid != 0 &&
	    !vigil_str_in(v->name, "sudo", "su", "sudoedit", "newgrp", "pkexec", "doas", "passwd", "chsh", "chfn", "gpasswd",
			  "mount", "umount", "ping", "fusermount", "fusermount3", "unix_chkpwd"))
		vigil_fire(R_NON_SUDO_SETUID, "Unexpected setuid to root", F_PRIV);
}

void vigil_rules(const vigil_event *e) {
	struct ev v;
	load(e, &v);
	switch (e->kind) {
	case VIGIL_KIND_EXEC: on_exec(&v); break;
	case VIGIL_KIND_OPEN: on_open(&v); break;
	case VIGIL_KIND_UNLINK:
		if (log_file(v.path))
			vigil_fire(R_CLEAR_LOGS, "Log file deleted", F_FILE);
		break;
	case VIGIL_KIND_RENAME:
		write_checks(&v, v.new_path);
		if (log_file(v.path))
			vigil_fire(R_CLEAR_LOGS, "Log file moved away", F_FILE);
		break;
	case VIGIL_KIND_LINK: on_link(&v, VIGIL_KIND_LINK); break;
	case VIGIL_KIND_SYMLINK: on_link(&v, VIGIL_KIND_SYMLINK); break;
	case VIGIL_KIND_CHMOD:
		if (v.mode & 06000)
			vigil_fire(R_SETUID_BIT, "setuid or setgid bit set", F_FILE);
		break;
	case VIGIL_KIND_CONNECT: on_connect(&v); break;
	case VIGIL_KIND_PACKET_SOCKET:
		if (v.cid.n)
			vigil_fire(R_PACKET_SOCKET, "Packet socket created in a container", F_NET);
		break;
	case VIGIL_KIND_DUP_SOCKET:
		if (v.fd >= 0 && v.fd <= 2)
			vigil_fire(R_REVERSE_SHELL, "Socket redirected to stdin/stdout/stderr", F_NET);
		break;
	case VIGIL_KIND_PTRACE:
		/* PTRACE_TRACEME is 0 (absent on the wire); ATTACH 16, SEIZE 0x4206, POKE* 4-6. */
		if (v.ptrace_req == 0)
			vigil_fire(R_PTRACE_ANTIDEBUG, "PTRACE_TRACEME anti-debug", F_PRIV);
		else if (v.ptrace_req == 16 || v.ptrace_req == 0x4206 || (v.ptrace_req >= 4 && v.ptrace_req <= 6))
			vigil_fire(R_PTRACE_ATTACH, "ptrace attach or poke into another process", F_PRIV);
		break;
	case VIGIL_KIND_MODULE_LOAD: vigil_fire(R_KMOD, "Kernel module loaded", F_PRIV); break;
	case VIGIL_KIND_SETUID: on_setuid(&v); break;
	case VIGIL_KIND_MOUNT:
		/* Only a mount that took effect (an unprivileged container's
		 * attempt fails with EPERM and changes nothing), and not the OCI
		 * runtime's own set-up: runc's init stage joins the new
		 * container's cgroup and then makes its mounts (rootfs
		 * propagation, /proc, /dev ...) before it execs the entrypoint,
		 * so every container start looked like a mount "from inside". */
		if (v.cid.n && v.ret == 0 && !oci_runtime_init(&v))
			vigil_fire(R_MOUNT_PRIV, "Filesystem mounted from inside a container", F_PRIV);
		break;
	}
}
