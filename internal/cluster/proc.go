package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// proc is one cluster component running in its own process group, with
// stdout and stderr in a log file under the cluster directory.
type proc struct {
	name    string
	bin     string
	args    []string
	logPath string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // valid after done is closed
}

func newProc(dir, name, bin string, args ...string) *proc {
	return &proc{name: name, bin: bin, args: args, logPath: filepath.Join(dir, "logs", name+".log")}
}

// start launches the process. A restarted process appends to the same log,
// so a failure after a restart still shows what happened before it.
func (p *proc) start() error {
	if err := os.MkdirAll(filepath.Dir(p.logPath), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s log: %w", p.name, err)
	}
	fmt.Fprintf(f, "\n=== %s %s %v\n", time.Now().UTC().Format(time.RFC3339Nano), p.bin, p.args)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group so stop can signal the component and anything it
	// forked; Pdeathsig so a crashed test binary does not leave daemons.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.log, p.done, p.err = cmd, f, make(chan struct{}), nil
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return nil
}

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	if p.done == nil {
		return true, errors.New("never started")
	}
	select {
	case <-p.done:
		if p.err == nil {
			return true, errors.New("exited with status 0")
		}
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs
// the group. It is safe to call on a process that already exited or never
// started.
func (p *proc) stop(grace time.Duration) {
	if p.cmd == nil || p.done == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	// Children that ignored SIGTERM may outlive the leader.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if p.log != nil {
		p.log.Close()
		p.log = nil
	}
	p.cmd = nil
}

// tail returns the last n lines of the process log.
func (p *proc) tail(n int) string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
