// Package bpf holds Vigil's CO-RE BPF C programs. Each subpackage is one
// concern (sensor, enforce) and carries its bpf2go output, committed so that
// `go build` never needs clang. include/ holds vmlinux.h (dumped from a 6.18
// kernel's BTF with bpftool) and the shared helpers.
package bpf
