//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"eventrelay/internal/devstack"
)

// diskFullSize is the size of the tmpfs the stack's data lives on.
const diskFullSize = "64m"

// diskFull runs the embedded stack on a small tmpfs and fills it up for a
// while, from 1 s into a burst: every write the queue, the status store and
// the target make fails with "database or disk is full". Ingest must answer
// 503 (never 202 for an event it could not store); once the space returns,
// everything acknowledged is delivered and every database passes
// integrity_check. Mounting needs root (CI runs as root).
func diskFull(ctx context.Context, env scenarioEnv) (_ report, err error) {
	s := burstSizes(env)
	length := storeFaultLength(env)
	dir := filepath.Join(env.DataDir, "tmpfs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return report{}, err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+diskFullSize+",mode=0700"); err != nil {
		return report{}, fmt.Errorf("mount a %s tmpfs on %s (needs root): %w", diskFullSize, dir, err)
	}
	defer func() {
		if uerr := syscall.Unmount(dir, syscall.MNT_DETACH); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmount %s: %w", dir, uerr))
		}
	}()
	onTmpfs := env
	onTmpfs.DataDir = dir
	filler := filepath.Join(dir, "filler")
	rep, err := onStack(ctx, onTmpfs, stackPlan{
		name:    "disk-full",
		injects: fmt.Sprintf("the data directory's %s filesystem filled up for %v, from 1 s into the burst", diskFullSize, length),
		opts:    devstack.Options{TargetRate: s.limit},
		load:    burstLoad(s),
		inject: func(ctx context.Context, _ *devstack.Stack, r *run) error {
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
			n, err := fill(filler)
			if err != nil {
				return err
			}
			r.note("disk full (%d MiB filler written)", n>>20)
			ok := sleep(ctx, length)
			if err := os.Remove(filler); err != nil {
				return fmt.Errorf("free the space: %w", err)
			}
			r.note("space back")
			if !ok {
				return ctx.Err()
			}
			return nil
		},
		window: drainWindow(s, length),
	})
	if err != nil {
		return rep, err
	}
	return rep, checkIntegrity(ctx, dir)
}

// fill writes path until the filesystem is full; it returns the bytes
// written.
func fill(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("create the filler: %w", err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		switch {
		case errors.Is(err, syscall.ENOSPC):
			return n, nil
		case err != nil:
			return n, fmt.Errorf("write the filler: %w", err)
		}
	}
}
