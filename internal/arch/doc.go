// Package arch holds no code: its test keeps the module's dependencies
// pointing one way. Every package of the module belongs to one layer
// (domain, core, engine, service, platform, wiring, command, dev tool, test
// support), and each layer may import only the layers below it: the domain
// nothing, platform packages only each other, services no engine, no other
// service and no dev tool. Imports made only by _test.go files are not
// checked. docs/development.md ("Package map") lists the layers and their
// packages; a package the test cannot place in a layer fails it.
package arch
