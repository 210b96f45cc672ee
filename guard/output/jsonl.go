package output

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

// JSONLines writes one JSON object per alert per line.
type JSONLines struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
	buf    []byte
}

// NewJSONLines writes to w (for example os.Stdout). It does not close w.
func NewJSONLines(w io.Writer) *JSONLines { return &JSONLines{w: w} }

// Name implements Sink.
func (j *JSONLines) Name() string { return "jsonl" }

// Write implements Sink.
func (j *JSONLines) Write(a *alert.Alert) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("marshal alert: %w", err)
	}
	j.buf = append(append(j.buf[:0], b...), '\n')
	_, err = j.w.Write(j.buf)
	return err
}

// Close closes the underlying file when the sink owns one.
func (j *JSONLines) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closer != nil {
		err := j.closer.Close()
		j.closer = nil
		return err
	}
	return nil
}

// RotatingFile is an io.WriteCloser that rotates at MaxBytes, keeping Keep
// old files as path.1 ... path.Keep. Writes are never split across files.
type RotatingFile struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	keep     int
	f        *os.File
	size     int64
}

// OpenRotating opens (appending) path.
func OpenRotating(path string, maxBytes int64, keep int) (*RotatingFile, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("rotating file %s: max size must be positive", path)
	}
	if keep < 1 {
		keep = 1
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("rotating file: %w", err)
	}
	r := &RotatingFile{path: path, maxBytes: maxBytes, keep: keep}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open %s: %w", r.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat %s: %w", r.path, err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

func (r *RotatingFile) rotate() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", r.path, err)
	}
	for i := r.keep - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("rotate %s: %w", r.path, err)
	}
	return r.open()
}

// Write implements io.Writer.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxBytes {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// Close implements io.Closer. Safe to call twice.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// NewJSONFile writes JSON lines to a rotated file.
func NewJSONFile(path string, maxBytes int64, keep int) (*JSONLines, error) {
	rf, err := OpenRotating(path, maxBytes, keep)
	if err != nil {
		return nil, err
	}
	return &JSONLines{w: rf, closer: rf}, nil
}

// WriteEvent writes one event as a JSON line (the flat form of
// event.MarshalJSON), for `--events` and `vigil record`.
func (j *JSONLines) WriteEvent(e *event.Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(e.AppendJSON(j.buf[:0]), '\n')
	_, err := j.w.Write(j.buf)
	return err
}
