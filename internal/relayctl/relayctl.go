// Package relayctl implements the operator CLI. Its flags are the interface
// scripts and docs rely on: keep them stable.
package relayctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"eventrelay/internal/devstack"
)

// DefaultDataDir is where the local stack keeps its files.
const DefaultDataDir = ".data"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"dev", "run the whole pipeline on this machine (embedded engine)", runDev},
		{"token", "print a dev ID token for the local ingest", runToken},
		{"status", "print an event's status record", runStatus},
		{"events", "list events by status", runEvents},
		{"replay", "send failed or dead-lettered events again, keeping their history", runReplay},
		{"queue", "show or change the queue's dispatch rate, pause or resume it", runQueue},
		{"audit", "count events by status and list those that look stuck (task gone), changing nothing", runAudit},
		{"reconcile", "requeue events whose task vanished from the queue (--dry-run to only look)", runReconcile},
		{"migrate-shards", "give status records written before the sharded indexes their shard (gcp engine, once after the upgrade)", runMigrateShards},
		{"bench", "run the load benchmarks against a local stack", runBench},
	}
}

// errUsage marks a usage error: the message is printed with the usage.
var errUsage = errors.New("usage")

// Main runs the CLI and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "relayctl %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "relayctl %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "relayctl: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("relayctl — operate eventrelay\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'relayctl COMMAND -h' for a command's flags.\n")
	fmt.Fprint(w, b.String())
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("relayctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseInterspersed parses flags that may come before or after positional
// arguments (`relayctl status ID --json` and `relayctl status --json ID`).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// noPositional rejects arguments a command does not take, so a typo is an
// error rather than silently ignored.
func noPositional(pos []string) error {
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
	}
	return nil
}

// gcpFlags registers the flags that point the GCP engines at Cloud Tasks
// and Firestore; the emulator addresses default to what
// scripts/emulators.sh exports.
func gcpFlags(fs *flag.FlagSet, g *devstack.GCPOptions) {
	fs.StringVar(&g.Project, "gcp-project", envOr("GOOGLE_CLOUD_PROJECT", "eventrelay-dev"), "GCP project of the queue and the Firestore database")
	fs.StringVar(&g.Location, "gcp-location", "us-central1", "Cloud Tasks location")
	fs.StringVar(&g.Queue, "gcp-queue", "events", "Cloud Tasks queue id")
	fs.StringVar(&g.TasksEndpoint, "tasks-emulator", os.Getenv(testutilCloudTasksEnv), "Cloud Tasks emulator host:port (default $CLOUD_TASKS_EMULATOR_HOST)")
	fs.StringVar(&g.OIDCIssuer, "tasks-oidc-issuer", os.Getenv(testutilCloudTasksOIDCEnv), "issuer URL of the emulator's task tokens (default $CLOUD_TASKS_EMULATOR_OIDC_ISSUER)")
	fs.StringVar(&g.Collection, "firestore-collection", "events", "Firestore collection of the status documents (the emulator is found through $FIRESTORE_EMULATOR_HOST)")
}

// queueShardsFlag registers --queue-shards: how many engine queues carry
// the queue, as QUEUE_SHARDS tells the services (default $QUEUE_SHARDS, else
// 1). Shard i is the queue queue.ShardName(--gcp-queue, i) on Cloud Tasks
// and the file queue-<i>.db beside queue.db in --data (shard 0 is queue.db).
func queueShardsFlag(fs *flag.FlagSet, n *int) {
	def := 1
	if v, err := strconv.Atoi(os.Getenv("QUEUE_SHARDS")); err == nil {
		def = v
	}
	fs.IntVar(n, "queue-shards", def, "how many queues carry the queue (QUEUE_SHARDS): Cloud Tasks --gcp-queue, --gcp-queue-1, ...; embedded queue.db, queue-1.db, ...")
}

// The emulator variables, as scripts/emulators.sh exports them.
const (
	testutilCloudTasksEnv     = "CLOUD_TASKS_EMULATOR_HOST"
	testutilCloudTasksOIDCEnv = "CLOUD_TASKS_EMULATOR_OIDC_ISSUER"
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
