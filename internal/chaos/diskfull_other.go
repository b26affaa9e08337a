//go:build !linux

package chaos

import (
	"context"
	"errors"
)

func diskFull(context.Context, Env) (Report, error) {
	return Report{}, errors.New("disk-full mounts a tmpfs: Linux only")
}
