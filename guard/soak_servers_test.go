//go:build soak

package guard_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/privtest"
	"github.com/vigilsec/vigil/internal/runctest"
)

// The soak's servers listen on 127.0.0.1 on ports no Debian default uses,
// so a host that does run nginx, redis or postgres is not disturbed.
const (
	nginxPort = 18080
	redisPort = 16379
	pgPort    = 15432
)

// Host binaries from Debian's nginx-light, redis-server, redis-tools and
// postgresql packages (scripts/deps.sh servers).
const (
	nginxBin     = "/usr/sbin/nginx"
	redisBin     = "/usr/bin/redis-server"
	redisBench   = "/usr/bin/redis-benchmark"
	pgBinPattern = "/usr/lib/postgresql/*/bin"
)

// server is one real server in a runc container and its load generator.
type server struct {
	name    string
	ctr     *runctest.Container
	started time.Time
	// load runs the server's normal traffic until ctx ends; it reports what
	// it did through stats.
	load  func(ctx context.Context, st *loadStats)
	stats loadStats
}

// loadStats counts what a load generator did, so the test can show the
// servers were really under load (and fail if they were not).
type loadStats struct {
	ok, notFound, errs atomic.Uint64
	lastErr            atomic.Value // string
}

func (s *loadStats) fail(err error) {
	s.errs.Add(1)
	s.lastErr.Store(err.Error())
}

func (s *loadStats) String() string {
	last, _ := s.lastErr.Load().(string)
	out := fmt.Sprintf("%d ok, %d 404, %d errors", s.ok.Load(), s.notFound.Load(), s.errs.Load())
	if last != "" {
		out += " (last: " + last + ")"
	}
	return out
}

// hostIDs returns the uid and gid of a host user created by its package.
func hostIDs(t *testing.T, name string) (uint32, uint32) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("host user %s (installed by its Debian package): %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid)
}

// soakPasswd is the containers' /etc/passwd and /etc/group: the servers'
// own users, with the host's ids because the host's package files are
// bound in.
func soakPasswd(t *testing.T) map[string]string {
	var pw, gr strings.Builder
	pw.WriteString("root:x:0:0:root:/root:/bin/sh\n")
	gr.WriteString("root:x:0:\n")
	for _, n := range []string{"www-data", "redis", "postgres"} {
		uid, gid := hostIDs(t, n)
		fmt.Fprintf(&pw, "%s:x:%d:%d:%s:/var/lib/%s:/usr/sbin/nologin\n", n, uid, gid, n, n)
		fmt.Fprintf(&gr, "%s:x:%d:\n", n, gid)
	}
	pw.WriteString("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
	gr.WriteString("nogroup:x:65534:\n")
	return map[string]string{"/etc/passwd": pw.String(), "/etc/group": gr.String()}
}

// hostUsr is what every server container shares: the host's /usr,
// read-only, with merged-/usr symlinks, as an image built from the same
// Debian packages would contain.
var hostUsr = runctest.Options{
	Mounts:   []runctest.Mount{{Dest: "/usr", Source: "/usr", ReadOnly: true}},
	Symlinks: map[string]string{"lib": "usr/lib", "lib64": "usr/lib64"},
}

// dockerCaps is Docker's default capability set minus NET_RAW and MKNOD:
// what a server container usually runs with.
var dockerCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_SYS_CHROOT"}

func withFiles(base map[string]string, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

const nginxConf = `user www-data www-data;
worker_processes 2;
daemon off;
pid /run/nginx/nginx.pid;
error_log /var/log/nginx/error.log warn;
events { worker_connections 256; }
http {
	types {
		text/html html;
		text/css css;
		application/javascript js;
		application/json json;
		image/svg+xml svg;
	}
	default_type application/octet-stream;
	access_log /var/log/nginx/access.log;
	sendfile on;
	keepalive_timeout 30s;
	keepalive_requests 200;
	server {
		listen 127.0.0.1:18080;
		root /srv/www;
		location / { try_files $uri $uri/ =404; }
		location = /healthz { return 200 "ok\n"; }
	}
}
`

// nginxPaths are the load's GETs; anything else is a 404.
var nginxPaths = []string{"/", "/index.html", "/static/app.3f9a1c2e.js", "/static/site.css", "/static/logo.svg",
	"/api/status.json", "/healthz"}

// startNginx runs Debian's nginx: master as root, two workers as www-data,
// static files, access and error logs, keep-alive.
func startNginx(t *testing.T, passwd map[string]string) *server {
	privtest.RequireTool(t, nginxBin)
	opts := hostUsr
	opts.Args = []string{nginxBin, "-c", "/etc/nginx/nginx.conf"}
	opts.HostNetwork = true
	opts.Caps = dockerCaps
	opts.Mounts = append(append([]runctest.Mount(nil), hostUsr.Mounts...),
		runctest.Mount{Dest: "/var/log/nginx"}, runctest.Mount{Dest: "/var/lib/nginx"}, runctest.Mount{Dest: "/run/nginx"})
	opts.Files = withFiles(passwd, map[string]string{
		"/etc/nginx/nginx.conf":           nginxConf,
		"/srv/www/index.html":             "<!doctype html><title>soak</title><link rel=stylesheet href=/static/site.css><script src=/static/app.3f9a1c2e.js></script>\n",
		"/srv/www/static/app.3f9a1c2e.js": strings.Repeat("console.log('vigil soak');\n", 400),
		"/srv/www/static/site.css":        strings.Repeat("body{margin:0;font:14px sans-serif}\n", 100),
		"/srv/www/static/logo.svg":        `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>` + "\n",
		"/srv/www/api/status.json":        `{"status":"ok","version":"1.0.0"}` + "\n",
	})
	s := &server{name: "nginx", started: time.Now()}
	s.ctr = runctest.Start(t, opts)
	waitTCP(t, s, nginxPort)
	s.load = nginxLoad
	return s
}

// nginxLoad: ~40 requests/s over keep-alive connections, every fifth on a
// new connection, every seventh a 404.
func nginxLoad(ctx context.Context, st *loadStats) {
	keep := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer keep.CloseIdleConnections()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		path := nginxPaths[i%len(nginxPaths)]
		if i%7 == 3 {
			path = fmt.Sprintf("/static/missing-%d.js", i%50)
		}
		c := keep
		if i%5 == 0 {
			c = fresh
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", nginxPort, path), nil)
		resp, err := c.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				st.fail(err)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			st.ok.Add(1)
		case http.StatusNotFound:
			st.notFound.Add(1)
		default:
			st.fail(fmt.Errorf("GET %s: %s", path, resp.Status))
		}
	}
}

const redisConf = `bind 127.0.0.1
port 16379
protected-mode yes
daemonize no
supervised no
logfile ""
loglevel notice
dir /data
dbfilename dump.rdb
save 30 1000
appendonly no
`

// startRedis runs Debian's redis-server as the redis user, snapshotting
// (fork + BGSAVE + rename) every 30 s under the load's write rate.
func startRedis(t *testing.T, passwd map[string]string) *server {
	privtest.RequireTool(t, redisBin)
	privtest.RequireTool(t, redisBench)
	uid, gid := hostIDs(t, "redis")
	opts := hostUsr
	opts.Args = []string{redisBin, "/etc/redis/redis.conf"}
	opts.HostNetwork = true
	opts.UID, opts.GID = uid, gid
	opts.Mounts = append(append([]runctest.Mount(nil), hostUsr.Mounts...), runctest.Mount{Dest: "/data"})
	opts.Files = withFiles(passwd, map[string]string{"/etc/redis/redis.conf": redisConf})
	s := &server{name: "redis", started: time.Now()}
	s.ctr = runctest.Start(t, opts)
	waitTCP(t, s, redisPort)
	s.load = redisLoad
	return s
}

// redisLoad: two RESP clients at ~100 commands/s each (SET, GET, INCR,
// LPUSH+LTRIM), reconnecting every 500 commands, plus a short
// redis-benchmark burst of new connections every 20 s.
func redisLoad(ctx context.Context, st *loadStats) {
	var wg sync.WaitGroup
	for c := 0; c < 2; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			redisClient(ctx, c, st)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			out, err := exec.CommandContext(ctx, redisBench, "-h", "127.0.0.1", "-p", strconv.Itoa(redisPort),
				"-n", "1000", "-c", "2", "-t", "get,set,incr,lpush", "-q").CombinedOutput()
			if err != nil && ctx.Err() == nil {
				st.fail(fmt.Errorf("redis-benchmark: %w: %s", err, out))
			} else if err == nil {
				st.ok.Add(4000)
			}
		}
	}()
	wg.Wait()
}

func redisClient(ctx context.Context, id int, st *loadStats) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var conn net.Conn
	var r *bufio.Reader
	var w *bufio.Writer
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if conn == nil || i%500 == 0 {
			if conn != nil {
				conn.Close()
			}
			var err error
			conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", redisPort), 5*time.Second)
			if err != nil {
				conn = nil
				st.fail(err)
				continue
			}
			r, w = bufio.NewReader(conn), bufio.NewWriter(conn)
		}
		var args []string
		switch k := fmt.Sprintf("soak:%d:%d", id, i%1000); i % 5 {
		case 0, 1:
			args = []string{"SET", k, strconv.Itoa(i)}
		case 2:
			args = []string{"GET", k}
		case 3:
			args = []string{"INCR", fmt.Sprintf("soak:counter:%d", id)}
		case 4:
			args = []string{"LPUSH", fmt.Sprintf("soak:list:%d", id), strconv.Itoa(i)}
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		respWrite(w, args...)
		if i%5 == 4 {
			respWrite(w, "LTRIM", fmt.Sprintf("soak:list:%d", id), "0", "99")
		}
		err := w.Flush()
		if err == nil {
			err = respRead(r)
		}
		if err == nil && i%5 == 4 {
			err = respRead(r)
		}
		if err != nil {
			st.fail(err)
			conn.Close()
			conn = nil
			continue
		}
		st.ok.Add(1)
	}
}

func respWrite(w *bufio.Writer, args ...string) {
	fmt.Fprintf(w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(w, "$%d\r\n%s\r\n", len(a), a)
	}
}

// respRead reads one RESP reply; an error reply is an error.
func respRead(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return errors.New("resp: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return nil
	case '-':
		return fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return fmt.Errorf("resp: bulk length %q", line)
		}
		if n < 0 {
			return nil
		}
		_, err = io.CopyN(io.Discard, r, int64(n)+2)
		return err
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return fmt.Errorf("resp: array length %q", line)
		}
		for i := 0; i < n; i++ {
			if err := respRead(r); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("resp: unexpected reply %q", line)
}

// pgBin returns the directory of Debian's postgresql server binaries.
func pgBin(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob(pgBinPattern)
	for _, d := range m {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	t.Fatalf("no postgres server under %s (scripts/deps.sh servers installs postgresql)", pgBinPattern)
	return ""
}

// startPostgres initializes a cluster on the host as the postgres user (the
// volume a real deployment would provision), then runs Debian's postgres
// inside a container as that user, on the volume. Its own periodic work —
// checkpointer, autovacuum launcher and workers, WAL writer — runs
// unchanged.
func startPostgres(t *testing.T, passwd map[string]string) *server {
	bin := pgBin(t)
	uid, gid := hostIDs(t, "postgres")
	// Under /tmp (sticky, world-traversable) rather than t.TempDir, whose
	// 0700 parents the postgres user could not enter.
	vol, err := os.MkdirTemp("", "vigil-soak-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(vol) })
	if err := os.Chown(vol, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(vol, "data"), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	initdb.Dir = vol
	initdb.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + vol, "LC_ALL=C"}
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := hostUsr
	opts.Args = []string{filepath.Join(bin, "postgres"), "-D", "/var/lib/postgresql/data", "-p", strconv.Itoa(pgPort),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=/tmp", "-c", "shared_buffers=32MB",
		"-c", "max_connections=40"}
	opts.HostNetwork = true
	opts.UID, opts.GID = uid, gid
	opts.Mounts = append(append([]runctest.Mount(nil), hostUsr.Mounts...),
		runctest.Mount{Dest: "/var/lib/postgresql", Source: vol})
	opts.Files = passwd
	s := &server{name: "postgres", started: time.Now()}
	s.ctr = runctest.Start(t, opts)
	waitTCP(t, s, pgPort)
	// pg accepts TCP before it accepts queries; pgbench -i retries until
	// the database is up.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command(filepath.Join(bin, "pgbench"), pgArgs("-i", "-s", "2", "-q")...).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.ctr.Bundle, "init.log"))
			t.Fatalf("pgbench -i: %v\n%s\npostgres log:\n%s", err, out, log)
		}
		time.Sleep(time.Second)
	}
	s.load = func(ctx context.Context, st *loadStats) { pgLoad(ctx, bin, st) }
	return s
}

func pgArgs(extra ...string) []string {
	return append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(pgPort), "-U", "postgres"}, append(extra, "postgres")...)
}

// pgLoad runs pgbench's TPC-B-like mix at 10 transactions/s, each on a new
// connection (-C), so postgres forks a backend per transaction, as it does
// behind an application without a pool. One-minute runs, back to back, so
// the counts show progress.
func pgLoad(ctx context.Context, bin string, st *loadStats) {
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "pgbench"),
			pgArgs("-n", "-C", "-c", "2", "-j", "1", "-R", "10", "-T", "60")...)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			st.fail(fmt.Errorf("pgbench: %w: %s", err, lastLine(out)))
			time.Sleep(time.Second)
			continue
		}
		for _, l := range strings.Split(string(out), "\n") {
			if n, ok := strings.CutPrefix(l, "number of transactions actually processed: "); ok {
				n, _, _ = strings.Cut(n, "/")
				v, _ := strconv.ParseUint(strings.TrimSpace(n), 10, 64)
				st.ok.Add(v)
			}
		}
	}
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// waitTCP waits until s listens on 127.0.0.1:port.
func waitTCP(t *testing.T, s *server, port int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.ctr.Bundle, "init.log"))
			t.Fatalf("%s does not listen on 127.0.0.1:%d after 60 s: %v\n%s", s.name, port, err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
