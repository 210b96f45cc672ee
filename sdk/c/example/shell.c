/* Example rule: a shell started inside a container. See ../README.md. */
#include "vigil.h"

VIGIL_META("{\"abi\":1,\"module\":\"c-example\",\"version\":\"0.1.0\",\"rules\":[{"
	   "\"name\":\"Terminal shell in container\","
	   "\"description\":\"A shell (bash, sh, zsh) was started inside a container.\","
	   "\"priority\":\"Warning\",\"kinds\":[\"exec\"],"
	   "\"tags\":[\"container\",\"shell\",\"mitre_execution\",\"T1059\"]}]}")

void vigil_rules(const vigil_event *e) {
	if (e->kind != VIGIL_KIND_EXEC || !vigil_has(e, VIGIL_F_CONTAINER_ID))
		return;
	if (vigil_str_in(vigil_str(e, VIGIL_F_PROC_NAME), "bash", "sh", "zsh"))
		vigil_fire(0, "Shell spawned in a container",
			   VIGIL_FIELDS(VIGIL_F_PROC_NAME, VIGIL_F_PROC_ARGS, VIGIL_F_CONTAINER_ID, VIGIL_F_K8S_POD));
}
