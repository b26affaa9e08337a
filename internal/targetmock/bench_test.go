package targetmock

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkReceiveEvent measures receiveEvent calls through real HTTP, each
// with a new id (an insert) unless noted. The file store is what relayctl
// dev and the crash test use; it must keep up with a few hundred calls/s.
func BenchmarkReceiveEvent(b *testing.B) {
	cases := []struct {
		name string
		env  map[string]string
		file bool
		// sameID sends one id over and over (the duplicate path).
		sameID bool
	}{
		{name: "accepted/memory", env: unlimited()},
		{name: "accepted/file", env: unlimited(), file: true},
		{name: "duplicate/file", env: unlimited(), file: true, sameID: true},
		{name: "rate_limited/file", env: map[string]string{"TARGET_RATE": "0.001"}, file: true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.file {
				env["TARGET_DATA"] = filepath.Join(b.TempDir(), "targetmock.db")
			}
			tt := newTarget(b, env, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.Cleanup(client.CloseIdleConnections)
			var seq atomic.Int64

			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := "bench"
					if !tc.sameID {
						id = eventID(int(seq.Add(1)))
					}
					body, err := json.Marshal(map[string]any{"query": receiveMutation, "variables": map[string]any{"in": validInput(id)}})
					if err != nil {
						b.Error(err)
						return
					}
					resp, err := client.Post(tt.url+"/graphql", "application/json", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
						b.Errorf("HTTP %d", resp.StatusCode)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			st := tt.stats(b)
			if st.Calls < b.N {
				b.Errorf("recorded %d calls, want at least %d", st.Calls, b.N)
			}
		})
	}
}
