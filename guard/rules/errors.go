package rules

import "errors"

// Reasons a module is refused at load or quarantined at run time. Stats
// reports them per module; callers and tests match with errors.Is.
var (
	ErrNotWasm        = errors.New("not a valid wasm module")
	ErrMissingExport  = errors.New("missing or mistyped export")
	ErrUnknownImport  = errors.New("unknown import")
	ErrABIVersion     = errors.New("unsupported abi version")
	ErrBadMeta        = errors.New("bad metadata")
	ErrUnpinned       = errors.New("module is not pinned")
	ErrDigestMismatch = errors.New("module digest does not match its pin")
	ErrInit           = errors.New("instantiation failed")
	ErrTrap           = errors.New("guest trapped")
	ErrDeadline       = errors.New("guest ran past its deadline")
	ErrMemoryLimit    = errors.New("guest reached its memory limit")
	ErrBadPointer     = errors.New("guest pointer out of bounds")
	ErrBadOutput      = errors.New("malformed guest output")
	ErrSlow           = errors.New("guest persistently slow")

	// ErrClosed is returned by calls on a closed engine.
	ErrClosed = errors.New("rules engine closed")
)
