package output

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
)

// Syslog sends RFC 5424 messages whose MSG is the alert's JSON, over a unix
// datagram socket (/dev/log) or UDP/TCP. TCP uses octet-counting framing
// (RFC 6587). A broken connection is redialled on the next alert.
type Syslog struct {
	mu       sync.Mutex
	network  string
	addr     string
	conn     net.Conn
	hostname string
}

// NewSyslog dials network ("unixgram", "udp" or "tcp") at addr lazily.
func NewSyslog(network, addr string) (*Syslog, error) {
	switch network {
	case "unixgram", "udp", "tcp":
	default:
		return nil, fmt.Errorf("syslog: unsupported network %q", network)
	}
	host, _ := os.Hostname()
	return &Syslog{network: network, addr: addr, hostname: host}, nil
}

// Name implements Sink.
func (s *Syslog) Name() string { return "syslog" }

// severity maps Falco priorities onto syslog severities (same order).
func severity(p alert.Priority) int {
	if p > alert.Debug {
		return 7
	}
	return int(p)
}

// Format renders one RFC 5424 message with facility local0 (16).
func (s *Syslog) Format(a *alert.Alert) ([]byte, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("marshal alert: %w", err)
	}
	pri := 16*8 + severity(a.Priority)
	ts := a.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	return fmt.Appendf(nil, "<%d>1 %s %s vigil %d - - %s", pri, ts.UTC().Format(time.RFC3339Nano), s.hostname, os.Getpid(), body), nil
}

// Write implements Sink.
func (s *Syslog) Write(a *alert.Alert) error {
	msg, err := s.Format(a)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; attempt < 2; attempt++ {
		if s.conn == nil {
			c, err := net.DialTimeout(s.network, s.addr, 5*time.Second)
			if err != nil {
				return fmt.Errorf("syslog dial %s %s: %w", s.network, s.addr, err)
			}
			s.conn = c
		}
		out := msg
		if s.network == "tcp" {
			out = append(fmt.Appendf(nil, "%d ", len(msg)), msg...)
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err = s.conn.Write(out); err == nil {
			return nil
		}
		s.conn.Close()
		s.conn = nil
	}
	return fmt.Errorf("syslog write: %w", err)
}

// Close implements Sink. Safe to call twice.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
