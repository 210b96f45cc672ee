//go:build wasip1

package vigil

import "unsafe"

// The ABI exports. The Go runtime initializes (and runs init functions,
// which register rules) in _initialize, which the host calls first.

var inBuf []byte

//go:wasmexport vigil_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport vigil_meta
func vigilMeta() uint64 {
	m := meta()
	return uint64(len(m))<<32 | uint64(uintptr(unsafe.Pointer(&m[0])))
}

//go:wasmexport vigil_input
func vigilInput(size uint32) uint32 {
	if uint32(cap(inBuf)) < size {
		inBuf = make([]byte, size)
	}
	inBuf = inBuf[:cap(inBuf)]
	return uint32(uintptr(unsafe.Pointer(&inBuf[0])))
}

//go:wasmexport vigil_evaluate
func vigilEvaluate(ptr, length, n uint32) uint64 {
	// The host writes only into the buffer vigil_input returned; anything
	// else is a host bug, answered with "no verdicts".
	if len(inBuf) == 0 || ptr != uint32(uintptr(unsafe.Pointer(&inBuf[0]))) || length > uint32(len(inBuf)) {
		return 0
	}
	out := evaluate(inBuf[:length], int(n))
	if len(out) == 0 {
		return 0
	}
	return uint64(len(out))<<32 | uint64(uintptr(unsafe.Pointer(&out[0])))
}

//go:wasmimport vigil log
func hostLog(level uint32, ptr unsafe.Pointer, n uint32)

// Log writes a line to the guard's log (rate-limited by the host). Levels:
// 0 debug, 1 info, 2 warn, 3 error.
func Log(level int, msg string) {
	if len(msg) == 0 {
		return
	}
	hostLog(uint32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
