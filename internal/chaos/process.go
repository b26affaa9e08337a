package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// healthTimeout bounds how long a started process may take to answer on
// /health.
const healthTimeout = 60 * time.Second

// ProcessOptions describe a `relayctl dev` process on loopback.
type ProcessOptions struct {
	// Bin is the relayctl binary.
	Bin string
	// DataDir is the stack's data directory; a restart reuses it.
	DataDir string
	// IngestAddr, TargetAddr and DispatcherAddr are fixed host:port
	// addresses, so a restart listens where the last run did (the Cloud
	// Tasks emulator keeps the dispatcher's URL in every task).
	IngestAddr, TargetAddr, DispatcherAddr string
	// Args are extra `relayctl dev` flags (rates, engine).
	Args []string
}

// Process is a running `relayctl dev` that the harness can kill and
// restart. Its output is appended to DataDir/chaos-relayctl.out.
type Process struct {
	opts ProcessOptions
	cmd  *exec.Cmd
	out  *os.File
	exit chan error
}

// StartProcess starts `relayctl dev` (no source, no ops page) and waits
// until ingest and the target answer on /health.
func StartProcess(ctx context.Context, o ProcessOptions) (*Process, error) {
	p := &Process{opts: o}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Process) start(ctx context.Context) error {
	o := p.opts
	out, err := os.OpenFile(filepath.Join(o.DataDir, "chaos-relayctl.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
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
	for _, addr := range []string{o.IngestAddr, o.TargetAddr} {
		if err := waitHealthy(ctx, "http://"+addr+"/health", p.exit); err != nil {
			return errors.Join(err, p.Kill())
		}
	}
	return nil
}

// Kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *Process) Kill() error {
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

// Restart starts the process again on the same data directory and
// addresses; the previous one must have ended.
func (p *Process) Restart(ctx context.Context) error {
	if p.cmd != nil {
		return errors.New("restart: the process is still running")
	}
	return p.start(ctx)
}

// Stop sends SIGINT (a clean shutdown) and waits for the process to end;
// after stopTimeout it kills it.
func (p *Process) Stop() error {
	const stopTimeout = 30 * time.Second
	if p.cmd == nil {
		return nil
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return errors.Join(fmt.Errorf("interrupt relayctl dev: %w", err), p.Kill())
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
		return errors.Join(fmt.Errorf("relayctl dev did not stop within %v", stopTimeout), p.Kill())
	}
}

// waitHealthy polls url until it answers 200, the process exits, or
// healthTimeout passes.
func waitHealthy(ctx context.Context, url string, exited chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(healthTimeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case exitErr := <-exited:
			exited <- exitErr // Kill reads it again
			return fmt.Errorf("relayctl dev exited before %s answered: %v", url, exitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %v: %v", url, healthTimeout, err)
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
