//go:build ignore

/* The sensor's single compilation unit: every program shares the maps in
 * sensor.h, so they load as one collection with one ring buffer. Each
 * attach point keeps its own file. */
#include "sensor.h"
#include "exec.c"
#include "fork.c"
#include "exit.c"
#include "sys_exit.h"
#include "files.c"
#include "network.c"
#include "privilege.c"
#include "sys_exit.c"
