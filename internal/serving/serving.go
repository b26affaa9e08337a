// Package serving runs HTTP servers the same way in every service: the
// listener is opened in the constructor (so tests can use port 0), every
// timeout is set, and shutdown is bounded.
package serving

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Timeouts for one server. Zero values take the defaults below.
type Timeouts struct {
	ReadHeader time.Duration
	Read       time.Duration
	Write      time.Duration
	Idle       time.Duration
	Shutdown   time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.ReadHeader == 0 {
		t.ReadHeader = 2 * time.Second
	}
	if t.Read == 0 {
		t.Read = 10 * time.Second
	}
	if t.Write == 0 {
		t.Write = 60 * time.Second
	}
	if t.Idle == 0 {
		t.Idle = 120 * time.Second
	}
	if t.Shutdown == 0 {
		t.Shutdown = 10 * time.Second
	}
	return t
}

// Server is an HTTP server bound to a listener.
type Server struct {
	ln       net.Listener
	timeouts Timeouts
}

// New opens a TCP listener on addr ("127.0.0.1:0" picks a free port).
func New(addr string, t Timeouts) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &Server{ln: ln, timeouts: t.withDefaults()}, nil
}

// Addr is the address the server listens on, e.g. "127.0.0.1:41234".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return "http://" + s.Addr() }

// Serve serves h until ctx is done, then shuts down within the shutdown
// timeout. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.timeouts.ReadHeader,
		ReadTimeout:       s.timeouts.Read,
		WriteTimeout:      s.timeouts.Write,
		IdleTimeout:       s.timeouts.Idle,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(s.ln) }()

	select {
	case err := <-errCh:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeouts.Shutdown)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return errors.Join(fmt.Errorf("shutdown: %w", err), srv.Close())
	}
	return nil
}

// Close releases the listener of a server that will not Serve (e.g. when a
// later step of start-up failed). After Serve it is not needed.
func (s *Server) Close() error { return s.ln.Close() }
