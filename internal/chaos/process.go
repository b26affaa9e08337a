package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"eventrelay/internal/testutil"
)

// healthTimeout bounds how long a started process may take to answer on
// /health.
const healthTimeout = 60 * time.Second

// relayProcessOptions describe a `relayctl dev` process on loopback.
type relayProcessOptions struct {
	// Bin is the relayctl binary.
	Bin string
	// DataDir is the stack's data directory; a restart reuses it.
	DataDir string
	// IngestAddr, TargetAddr and DispatcherAddr are host:port addresses. A
	// port 0 lets the first start pick a free port, read back from what the
	// process prints (TargetAddr only when the process runs targetmock, not
	// with --target-url); restarts listen where the first run did (the
	// Cloud Tasks emulator keeps the dispatcher's URL in every task).
	IngestAddr, TargetAddr, DispatcherAddr string
	// Args are extra `relayctl dev` flags (rates, engine).
	Args []string
}

// relayProcess is a running `relayctl dev` that the harness can kill and
// restart. Its output is appended to DataDir/chaos-relayctl.out.
type relayProcess struct {
	opts relayProcessOptions
	cmd  *exec.Cmd
	out  *os.File
	exit chan error
}

// startRelayProcess starts `relayctl dev` (no source, no ops page) and waits
// until ingest and the target answer on /health.
func startRelayProcess(ctx context.Context, o relayProcessOptions) (*relayProcess, error) {
	p := &relayProcess{opts: o}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// ingestAddr is the address ingest listens on.
func (p *relayProcess) ingestAddr() string { return p.opts.IngestAddr }

func (p *relayProcess) start(ctx context.Context) error {
	o := p.opts
	out, err := os.OpenFile(filepath.Join(o.DataDir, "chaos-relayctl.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open process output: %w", err)
	}
	// What this run prints starts here: earlier runs wrote before it.
	printedFrom, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		_ = out.Close()
		return fmt.Errorf("open process output: %w", err)
	}
	args := append([]string{"dev",
		"--data", o.DataDir,
		"--source-rate", "0",
		"--ops-addr", "",
		"--log-level", "warn",
		"--ingest-addr", o.IngestAddr,
		"--target-addr", o.TargetAddr,
		"--dispatcher-addr", o.DispatcherAddr,
	}, o.Args...)
	cmd := exec.Command(o.Bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return fmt.Errorf("start relayctl dev: %w", err)
	}
	p.cmd, p.out, p.exit = cmd, out, make(chan error, 1)
	go func() { p.exit <- cmd.Wait() }()
	if err := p.readAddrs(ctx, printedFrom); err != nil {
		return errors.Join(err, p.kill())
	}
	for _, addr := range []string{p.opts.IngestAddr, p.opts.TargetAddr} {
		if err := waitHealthy(ctx, "http://"+addr+"/health", p.exit); err != nil {
			return errors.Join(err, p.kill())
		}
	}
	return nil
}

// readAddrs replaces each address with port 0 by the one the process
// reports on its start-up line ("  ingest      http://127.0.0.1:41234/events
// ..."), read from its output file past offset from.
func (p *relayProcess) readAddrs(ctx context.Context, from int64) error {
	addrs := []struct {
		addr *string
		name string // as relayctl dev prints it
	}{
		{&p.opts.IngestAddr, "ingest"},
		{&p.opts.TargetAddr, "targetmock"},
		{&p.opts.DispatcherAddr, "dispatcher"},
	}
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(*a.addr); err != nil || port != "0" {
			continue
		}
		err := poll(ctx, p.exit, "relayctl dev to print its "+a.name+" address", func() (bool, error) {
			printed, err := os.ReadFile(p.out.Name())
			if err != nil {
				return false, err
			}
			addr, ok := testutil.PrintedAddr(string(printed[min(from, int64(len(printed))):]), a.name)
			if ok {
				*a.addr = addr
			}
			return ok, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *relayProcess) kill() error {
	if p.cmd == nil {
		return nil
	}
	err := p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exit
	p.cmd = nil
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return errors.Join(fmt.Errorf("kill relayctl dev: %w", err), p.out.Close())
	}
	return p.out.Close()
}

// restart starts the process again on the same data directory and
// addresses; the previous one must have ended.
func (p *relayProcess) restart(ctx context.Context) error {
	if p.cmd != nil {
		return errors.New("restart: the process is still running")
	}
	return p.start(ctx)
}

// stop sends SIGINT (a clean shutdown) and waits for the process to end;
// after stopTimeout it kills it.
func (p *relayProcess) stop() error {
	const stopTimeout = 30 * time.Second
	if p.cmd == nil {
		return nil
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return errors.Join(fmt.Errorf("interrupt relayctl dev: %w", err), p.kill())
	}
	select {
	case err := <-p.exit:
		p.cmd = nil
		closeErr := p.out.Close()
		if err != nil {
			return errors.Join(fmt.Errorf("relayctl dev exited: %w (output in %s)", err, p.out.Name()), closeErr)
		}
		return closeErr
	case <-time.After(stopTimeout):
		return errors.Join(fmt.Errorf("relayctl dev did not stop within %v", stopTimeout), p.kill())
	}
}

// waitHealthy polls healthURL until it answers 200, the process exits, or
// healthTimeout passes.
func waitHealthy(ctx context.Context, healthURL string, exited chan error) error {
	client := &http.Client{Timeout: time.Second}
	return poll(ctx, exited, healthURL+" to answer 200", func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil // not listening yet
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// poll calls check every 50 ms until it reports done, check fails, the
// process exits (exited delivers), ctx ends or healthTimeout passes.
func poll(ctx context.Context, exited chan error, what string, check func() (done bool, err error)) error {
	deadline := time.Now().Add(healthTimeout)
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case exitErr := <-exited:
			exited <- exitErr // kill reads it again
			return fmt.Errorf("relayctl dev exited while waiting for %s: %v", what, exitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", healthTimeout, what)
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}
