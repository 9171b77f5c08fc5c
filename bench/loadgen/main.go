// Command loadgen is the TLS load generator of keyward's benchmarks (bench/compare.ts).
//
// It is compiled (Go's crypto/tls, standard library only) because the load must cost less
// CPU per handshake than the server it measures: a node:tls client costs about as much as a
// node:tls server, and OpenSSL 3.0's client (Debian's) measured ~1.6x this one per handshake.
// Every mode is bounded in time and count and prints JSON lines on stdout.
//
//	loadgen -mode handshakes -port P [-concurrency 16] [-seconds 5] [-max N] [-resume]
//	    C handshakes in flight, each on a new TCP connection closed once the handshake is
//	    done: close_notify, then what the server sends (tickets) read until it closes too. -resume offers the session a first connection got from the server
//	    (a TLS 1.3 ticket, or a TLS 1.2 ticket or session id), and counts the handshakes that
//	    resumed.
//	loadgen -mode bulk -port P -mb M [-direction up|down|both]
//	    one connection: "U <bytes>\n" and M MiB up (the server answers "ok\n"), and/or
//	    "D <bytes>\n" and M MiB down (the protocol of bench/compareServer.ts).
//	loadgen -mode hold -port P -count N [-inflight K] [-rate R]
//	    opens N connections (at most K handshaking at once, at most R new ones a second),
//	    prints {"started":N} once all are opened and {"established":..} once every handshake
//	    ended, then keeps them open (reading and dropping what the server sends) until stdin
//	    closes.
//	loadgen -mode probe -port P
//	    one handshake, then 300 ms of reading: version, suite, session tickets received; then a
//	    second handshake offering the session: resumed or not.
//
// Common flags: -host 127.0.0.1, -tls 1.3|1.2, -groups x25519[,p256], -cipher (TLS 1.2 suite,
// OpenSSL name), -timeout (ms, per handshake). Certificates are not verified (the client
// still checks the server's handshake signature, as TLS requires).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	mode        = flag.String("mode", "", "handshakes | bulk | hold | probe")
	host        = flag.String("host", "127.0.0.1", "server address")
	port        = flag.Int("port", 0, "server port")
	version     = flag.String("tls", "1.3", "1.3 or 1.2")
	groups      = flag.String("groups", "x25519", "key exchange groups offered: x25519, p256 (comma-separated)")
	cipher      = flag.String("cipher", "", "TLS 1.2 suite (OpenSSL name); TLS 1.3 suites follow Go's preference (AES-128-GCM first with AES-NI)")
	concurrency = flag.Int("concurrency", 16, "handshakes in flight")
	seconds     = flag.Float64("seconds", 5, "how long to run (handshakes)")
	maxCount    = flag.Int64("max", 10_000_000, "stop after this many handshakes")
	resume      = flag.Bool("resume", false, "offer the server's session (resumed handshakes)")
	mb          = flag.Int64("mb", 128, "MiB each way (bulk)")
	direction   = flag.String("direction", "both", "bulk: up, down or both (up first)")
	count       = flag.Int("count", 1000, "connections to hold")
	inflight    = flag.Int("inflight", 64, "hold: handshakes in progress at once")
	rate        = flag.Float64("rate", 0, "hold: new connections per second (0: as fast as -inflight allows)")
	timeoutMs   = flag.Int("timeout", 10_000, "per-handshake timeout, ms")
)

var suites12 = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", a...)
	os.Exit(1)
}

func cpuMicros() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec)*1e6 + float64(ru.Utime.Usec+ru.Stime.Usec)
}

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

// latestSession keeps the newest session the server gave and counts them (tickets).
// Go evicts a session the server declined by storing nil; the bench keeps offering the
// newest real one, so a server that declines shows up as handshakes that did not resume.
type latestSession struct {
	mu      sync.Mutex
	session *tls.ClientSessionState
	puts    int
}

func (c *latestSession) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session, c.session != nil
}

func (c *latestSession) Put(_ string, s *tls.ClientSessionState) {
	if s == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.session = s
	c.puts++
}

func (c *latestSession) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts
}

func config(cache tls.ClientSessionCache) *tls.Config {
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", ClientSessionCache: cache}
	switch *version {
	case "1.3":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	case "1.2":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		if *cipher != "" {
			id, ok := suites12[*cipher]
			if !ok {
				fail("-cipher %q is not one of the suites this load generator knows", *cipher)
			}
			cfg.CipherSuites = []uint16{id}
		}
	default:
		fail("-tls must be 1.3 or 1.2")
	}
	for _, g := range strings.Split(*groups, ",") {
		switch g {
		case "x25519":
			cfg.CurvePreferences = append(cfg.CurvePreferences, tls.X25519)
		case "p256":
			cfg.CurvePreferences = append(cfg.CurvePreferences, tls.CurveP256)
		default:
			fail("-groups: unknown group %q (x25519, p256)", g)
		}
	}
	return cfg
}

func address() string { return net.JoinHostPort(*host, strconv.Itoa(*port)) }

func handshake(cfg *tls.Config) (*tls.Conn, error) {
	timeout := time.Duration(*timeoutMs) * time.Millisecond
	raw, err := net.DialTimeout("tcp", address(), timeout)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// readFor reads and drops what the server sends for d (session tickets come after the handshake).
func readFor(c *tls.Conn, d time.Duration) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

type errorCount struct {
	n     atomic.Int64
	first atomic.Value
}

func (e *errorCount) add(err error) {
	e.n.Add(1)
	e.first.CompareAndSwap(nil, err.Error())
}

func (e *errorCount) fields(out map[string]any) {
	out["errors"] = e.n.Load()
	if f := e.first.Load(); f != nil {
		out["firstError"] = f
	}
}

// closeGracefully sends close_notify, reads (and drops: no session cache) what the server
// sends until it closes too, then closes the socket. A client that closed at once would make
// the server's session tickets, written after the client Finished, meet a reset socket: an
// error path (EPIPE/ECONNRESET objects) that real clients, which go on to send requests, do
// not cause.
func closeGracefully(c *tls.Conn) error {
	defer c.Close()
	if err := c.CloseWrite(); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Duration(*timeoutMs) * time.Millisecond))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("server did not close after close_notify: %w", err)
	}
	return nil
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(p * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func runHandshakes() {
	cache := &latestSession{}
	cfg := config(nil)
	if *resume {
		cfg.ClientSessionCache = cache
		c, err := handshake(cfg)
		if err != nil {
			fail("first handshake: %v", err)
		}
		readFor(c, 300*time.Millisecond)
		c.Close()
		if cache.count() == 0 {
			fail("-resume: the server gave no session to resume")
		}
	}
	var done, resumed atomic.Int64
	var errs errorCount
	lat := make([][]float64, *concurrency)
	cpu0 := cpuMicros()
	t0 := time.Now()
	end := t0.Add(time.Duration(*seconds * float64(time.Second)))
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for time.Now().Before(end) && done.Load()+errs.n.Load() < *maxCount {
				s := time.Now()
				c, err := handshake(cfg)
				if err != nil {
					errs.add(err)
					continue
				}
				lat[w] = append(lat[w], float64(time.Since(s).Microseconds())/1000)
				done.Add(1)
				if c.ConnectionState().DidResume {
					resumed.Add(1)
				}
				if err := closeGracefully(c); err != nil {
					errs.add(err)
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(t0).Seconds()
	cpu := cpuMicros() - cpu0
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Float64s(all)
	primed := 0
	if *resume {
		primed = 1 // the first, full handshake that got the session
	}
	out := map[string]any{"primed": primed, "handshakes": done.Load(), "resumed": resumed.Load(), "seconds": elapsed, "p50": percentile(all, 0.5), "p99": percentile(all, 0.99), "cpuUs": cpu}
	errs.fields(out)
	emit(out)
}

func runBulk() {
	c, err := handshake(config(nil))
	if err != nil {
		fail("handshake: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(120 * time.Second))
	total := *mb << 20
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = 'b'
	}
	out := map[string]any{}
	m := float64(*mb)
	if *direction == "up" || *direction == "both" {
		cpu0 := cpuMicros()
		t0 := time.Now()
		if _, err := fmt.Fprintf(c, "U %d\n", total); err != nil {
			fail("upload: %v", err)
		}
		for sent := int64(0); sent < total; sent += int64(len(block)) {
			if _, err := c.Write(block[:min64(int64(len(block)), total-sent)]); err != nil {
				fail("upload: %v", err)
			}
		}
		reply := make([]byte, 3)
		if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "ok\n" {
			fail("no answer to the upload: %v", err)
		}
		up := time.Since(t0).Seconds()
		out["uploadMBps"], out["uploadSeconds"], out["uploadCpuUs"] = m/up, up, cpuMicros()-cpu0
	}
	if *direction == "down" || *direction == "both" {
		cpu0 := cpuMicros()
		t0 := time.Now()
		if _, err := fmt.Fprintf(c, "D %d\n", total); err != nil {
			fail("download: %v", err)
		}
		buf := make([]byte, 256<<10)
		for got := int64(0); got < total; {
			n, err := c.Read(buf)
			if err != nil {
				fail("download ended early after %d bytes: %v", got, err)
			}
			got += int64(n)
		}
		down := time.Since(t0).Seconds()
		out["downloadMBps"], out["downloadSeconds"], out["downloadCpuUs"] = m/down, down, cpuMicros()-cpu0
	}
	if len(out) == 0 {
		fail("-direction must be up, down or both")
	}
	emit(out)
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

func runHold() {
	cfg := config(nil)
	var established atomic.Int64
	var errs errorCount
	var mu sync.Mutex
	var lat []float64
	var conns []*tls.Conn
	slots := make(chan struct{}, *inflight)
	var wg sync.WaitGroup
	cpu0 := cpuMicros()
	t0 := time.Now()
	for i := 0; i < *count; i++ {
		if *rate > 0 {
			if wait := time.Duration(float64(i) / *rate * float64(time.Second)) - time.Since(t0); wait > 0 {
				time.Sleep(wait)
			}
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			c, err := handshake(cfg)
			<-slots
			if err != nil {
				errs.add(err)
				return
			}
			established.Add(1)
			mu.Lock()
			lat = append(lat, float64(time.Since(s).Microseconds())/1000)
			conns = append(conns, c)
			mu.Unlock()
			// Read and drop (tickets) until the connection closes; the server closing it counts as an error.
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					if !errors.Is(err, net.ErrClosed) {
						established.Add(-1)
						errs.add(fmt.Errorf("established connection ended: %w", err))
					}
					return
				}
			}
		}()
	}
	emit(map[string]any{"started": *count, "seconds": time.Since(t0).Seconds()})
	// Every handshake has ended once every slot is free again.
	for i := 0; i < *inflight; i++ {
		slots <- struct{}{}
	}
	sort.Float64s(lat)
	out := map[string]any{"established": established.Load(), "seconds": time.Since(t0).Seconds(), "p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "cpuUs": cpuMicros() - cpu0}
	errs.fields(out)
	emit(out)
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
}

func runProbe() {
	cache := &latestSession{}
	cfg := config(cache)
	c, err := handshake(cfg)
	if err != nil {
		fail("handshake: %v", err)
	}
	st := c.ConnectionState()
	readFor(c, 300*time.Millisecond)
	c.Close()
	tickets := cache.count()
	resumes := false
	if tickets > 0 {
		again, err := handshake(cfg)
		if err != nil {
			fail("second handshake: %v", err)
		}
		resumes = again.ConnectionState().DidResume
		again.Close()
	}
	names := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}
	emit(map[string]any{"version": names[st.Version], "suite": tls.CipherSuiteName(st.CipherSuite), "groups": *groups, "tickets": tickets, "resumes": resumes})
}

func main() {
	flag.Parse()
	if *port <= 0 || *port > 65535 {
		fail("-port is required")
	}
	if *concurrency < 1 || *concurrency > 100_000 || *count < 1 || *count > 1_000_000 || *inflight < 1 {
		fail("-concurrency, -count or -inflight out of range")
	}
	if *seconds <= 0 || *seconds > 3600 {
		fail("-seconds must be in (0, 3600]")
	}
	// Hold mode keeps thousands of sockets: take the hard limit of descriptors.
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	switch *mode {
	case "handshakes":
		runHandshakes()
	case "bulk":
		runBulk()
	case "hold":
		runHold()
	case "probe":
		runProbe()
	default:
		fail("-mode must be handshakes, bulk, hold or probe")
	}
}
