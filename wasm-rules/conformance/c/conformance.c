/* The conformance module in C; spec in ../README.md. */
#include "../../../sdk/c/vigil.h"

VIGIL_META("{\"abi\":1,\"module\":\"conformance\",\"version\":\"1.0.0\",\"rules\":["
	   "{\"name\":\"conf-shell\",\"kinds\":[\"exec\"],\"priority\":\"Warning\"},"
	   "{\"name\":\"conf-kill-port\",\"kinds\":[\"connect\"],\"priority\":\"Notice\"},"
	   "{\"name\":\"conf-block-arg\",\"kinds\":[\"exec\"],\"priority\":\"Error\",\"action\":\"block\"},"
	   "{\"name\":\"conf-addr\",\"kinds\":[\"connect\"],\"priority\":\"Notice\"},"
	   "{\"name\":\"conf-setuid\",\"kinds\":[\"setuid\"],\"priority\":\"Critical\"},"
	   "{\"name\":\"conf-memfd\",\"kinds\":[\"exec\"],\"priority\":\"Critical\"},"
	   "{\"name\":\"conf-observe\",\"kinds\":[\"exec\"],\"priority\":\"Debug\"},"
	   "{\"name\":\"conf-admission\",\"kinds\":[\"admission\"],\"priority\":\"Warning\",\"action\":\"block\"}]}")

static int is_evil(vigil_str_t s, const char *arg) { return vigil_str_eq(s, arg); }

void vigil_rules(const vigil_event *e) {
	switch (e->kind) {
	case VIGIL_KIND_EXEC:
		if (vigil_has(e, VIGIL_F_CONTAINER_ID) && vigil_str_in(vigil_str(e, VIGIL_F_PROC_NAME), "bash", "sh"))
			vigil_alert(0, VIGIL_DEFAULT, "shell in container", VIGIL_FIELDS(VIGIL_F_PROC_NAME, VIGIL_F_CONTAINER_ID));
		if (vigil_list_any(vigil_list_of(e, VIGIL_F_PROC_ARGS), is_evil, "--evil"))
			vigil_fire(2, "evil argument", VIGIL_NO_FIELDS);
		if (vigil_bool(e, VIGIL_F_PROC_EXE_MEMFD))
			vigil_alert(5, VIGIL_CRITICAL, "memfd exec", VIGIL_NO_FIELDS);
		vigil_observe(6, "exec", VIGIL_FIELDS(VIGIL_F_PROC_EXE));
		break;
	case VIGIL_KIND_CONNECT: {
		if (vigil_u64v(e, VIGIL_F_NET_DST_PORT) == 4444)
			vigil_kill(1, VIGIL_CRITICAL, "connect to 4444", VIGIL_FIELDS(VIGIL_F_NET_DST_PORT));
		vigil_u8 a[16];
		if (vigil_addr(e, VIGIL_F_NET_DST_ADDR, a) == 16) {
			int lo = a[15] == 1;
			for (int i = 0; i < 15; i++)
				lo &= a[i] == 0;
			if (lo)
				vigil_fire(3, "loopback v6", VIGIL_NO_FIELDS);
		}
		break;
	}
	case VIGIL_KIND_SETUID:
		if (vigil_i64v(e, VIGIL_F_PRIV_ID0) == -1 && vigil_i64v(e, VIGIL_F_PRIV_ID1) == 0 &&
		    vigil_u64v(e, VIGIL_F_USER_EUID) != 0)
			vigil_fire(4, "setuid root", VIGIL_FIELDS(VIGIL_F_PRIV_ID1, VIGIL_F_USER_EUID));
		break;
	case VIGIL_KIND_ADMISSION:
		vigil_block(7, VIGIL_DEFAULT, "admission denied", VIGIL_NO_FIELDS);
		break;
	}
}
