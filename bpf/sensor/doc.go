// Package sensor holds the sensor's CO-RE BPF programs and their bpf2go
// output: the loader for one collection of tracepoint programs (process,
// file, network and privilege events) that share one ring buffer. Go code
// uses it through guard/sensor, which owns attaching, reading and decoding.
//
// The generated files are committed, so building needs no clang; `make
// generate` rebuilds them with Debian's clang 14.
package sensor

//go:generate go tool bpf2go -cc clang-14 -target amd64 -go-package sensor -type event -type counter -type interest_key -type vigil_kind Sensor sensor.c -- -I../include -O2 -g -Wall -mcpu=v3
