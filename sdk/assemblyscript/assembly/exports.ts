// The ABI exports (wasm-rules/ABI.md). A rule's entry file re-exports them:
//   export * from "<sdk>/assembly/exports";
import { abiMeta, abiInput, abiEvaluate } from "./vigil";

export function vigil_abi_version(): i32 { return 1; }
export function vigil_meta(): u64 { return abiMeta(); }
export function vigil_input(size: u32): usize { return abiInput(size); }
export function vigil_evaluate(ptr: usize, len: u32, n: u32): u64 { return abiEvaluate(ptr, len, n); }
