package relayctl

import (
	"strings"
	"testing"
)

// TestMigrateShardsEmbedded: the embedded status engine has no shard
// field, so the command says so and changes nothing; it still needs an
// existing store (a wrong --data is an error, not a silent no-op). The
// Firestore side, AddShards, is tested in firestorestatus on the emulator.
func TestMigrateShardsEmbedded(t *testing.T) {
	t.Parallel()
	dir := seed(t)
	code, out, errOut := run(t, "migrate-shards", "--data", dir)
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("migrate-shards = %d, stdout %q, stderr %q; want 0 and nothing to do", code, out, errOut)
	}
	if code, _, errOut := run(t, "migrate-shards", "--data", t.TempDir()+"/missing"); code == 0 || !strings.Contains(errOut, "no status store") {
		t.Errorf("migrate-shards on a missing store = %d, stderr %q; want an error naming it", code, errOut)
	}
}
