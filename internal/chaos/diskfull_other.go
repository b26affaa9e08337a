//go:build !linux

package chaos

import (
	"context"
	"errors"
)

func diskFull(context.Context, scenarioEnv) (report, error) {
	return report{}, errors.New("disk-full mounts a tmpfs: Linux only")
}
