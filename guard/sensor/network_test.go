package sensor

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/guard/event"
)

// listen opens a loopback listener in the test process (which the sensor
// ignores) that accepts and closes connections.
func listen(t *testing.T, network, addr string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func TestConnect(t *testing.T) {
	c := startSensor(t, Config{})
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		dst := listen(t, tc.network, tc.addr)
		pid := runHelper(t, "", "connect", dst.String())
		e := c.waitFor(t, "connect "+tc.network, of(event.KindConnect, pid))
		if e.Net.Dst != dst {
			t.Errorf("%s: dst %v, want %v", tc.network, e.Net.Dst, dst)
		}
		if e.Net.Src.Addr() != dst.Addr() || e.Net.Src.Port() == 0 {
			t.Errorf("%s: src %v", tc.network, e.Net.Src)
		}
		wantFamily := uint16(unix.AF_INET)
		if dst.Addr().Is6() {
			wantFamily = unix.AF_INET6
		}
		// Go dials non-blocking: connect returns 0 or EINPROGRESS.
		if e.Net.Family != wantFamily || e.Net.SockType != unix.SOCK_STREAM || e.Net.Proto != unix.IPPROTO_TCP ||
			(e.Ret != 0 && e.Ret != -int64(unix.EINPROGRESS)) || e.Net.FD < 3 {
			t.Errorf("%s: %+v ret %d", tc.network, e.Net, e.Ret)
		}
	}
}

// TestServer covers bind, listen and accept from a helper acting as a
// server on [::1], and the test connecting to it.
func TestServer(t *testing.T) {
	c := startSensor(t, Config{})
	portFile := filepath.Join(t.TempDir(), "port")
	cmd := helperCmd("", "server", portFile)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var port int
	for deadline := time.Now().Add(10 * time.Second); port == 0; {
		b, _ := os.ReadFile(portFile)
		port, _ = strconv.Atoi(string(b))
		if time.Now().After(deadline) {
			t.Fatalf("server never wrote its port: %s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var clients []netip.AddrPort
	for range 2 {
		conn, err := net.Dial("tcp6", "[::1]:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, conn.LocalAddr().(*net.TCPAddr).AddrPort())
		conn.Close()
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server: %v: %s", err, out.String())
	}
	pid := uint32(cmd.Process.Pid)
	srv := netip.AddrPortFrom(netip.IPv6Loopback(), uint16(port))

	b := c.waitFor(t, "bind", of(event.KindBind, pid))
	if b.Net.Src != netip.AddrPortFrom(netip.IPv6Loopback(), 0) || b.Net.Family != unix.AF_INET6 || b.Net.SockType != unix.SOCK_STREAM || b.Ret != 0 {
		t.Errorf("bind %+v ret %d", b.Net, b.Ret)
	}
	l := c.waitFor(t, "listen", of(event.KindListen, pid))
	if l.Net.Src != srv || l.Net.Backlog != 7 || l.Net.FD != b.Net.FD {
		t.Errorf("listen %+v", l.Net)
	}
	c.waitExit(t, pid)
	acc := c.all(of(event.KindAccept, pid))
	if len(acc) != 2 {
		t.Fatalf("%d accept events, want 2 (accept and accept4)", len(acc))
	}
	for i, a := range acc {
		if a.Net.Src != srv || a.Net.Dst != clients[i] || a.Ret < 3 || a.Net.FD != int32(a.Ret) {
			t.Errorf("accept %d: %+v ret %d; want src %v dst %v", i, a.Net, a.Ret, srv, clients[i])
		}
	}
	if acc[0].Proc.TID == 0 || acc[1].Ret == 0 {
		t.Errorf("accept records incomplete: %+v", acc)
	}
}

func TestPacketSocket(t *testing.T) {
	c := startSensor(t, Config{})
	pid := runHelper(t, "", "packet")
	e := c.waitFor(t, "packet socket", of(event.KindPacketSocket, pid))
	if e.Net.Family != unix.AF_PACKET || e.Net.SockType != unix.SOCK_RAW || e.Net.Proto != unix.ETH_P_ALL || e.Ret < 3 {
		t.Errorf("%+v ret %d", e.Net, e.Ret)
	}
}

func TestDupSocketOntoStdio(t *testing.T) {
	c := startSensor(t, Config{})
	dst := listen(t, "tcp4", "127.0.0.1:0")
	pid := runHelper(t, "", "dupsock", dst.String())
	c.waitExit(t, pid)
	got := c.all(of(event.KindDupSocket, pid))
	if len(got) != 2 {
		t.Fatalf("%d dup_socket events, want 2 (dup2 onto 1, dup3 onto 0)", len(got))
	}
	for i, wantFD := range []int32{1, 0} {
		e := got[i]
		if e.Net.FD != wantFD || e.Net.Dst != dst || e.Net.Family != unix.AF_INET || e.Ret != int64(wantFD) {
			t.Errorf("dup %d: %+v ret %d", i, e.Net, e.Ret)
		}
	}
}
