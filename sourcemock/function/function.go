// Package function registers sourcemock's SendEvents HTTP function with the
// Functions Framework. Importing it is all a server needs: `sourcemock
// -serve` does so locally, and the deployed function's generated main does
// so on Cloud Run functions. Its configuration is the environment (see
// sourcemock.FunctionConfig: INGEST_URL, TOKEN or TOKEN_AUDIENCE, MAX_COUNT,
// MAX_RATE, MAX_DURATION), read on the first request. Deployed, it sets
// TOKEN_AUDIENCE and sends Google-signed ID tokens minted by the metadata
// server as the function's own service account.
package function

import (
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/sourcemock"
)

// Name is the function's entry point (FUNCTION_TARGET).
const Name = "SendEvents"

func init() {
	functions.HTTP(Name, sourcemock.FunctionFromEnv(envconfig.OsLookuper()))
}
