// Package e2e holds tests that build the real skiff binary and run it as
// separate processes on loopback, the way users run it: server clusters
// killed with SIGKILL, restarted, and checked for lost writes.
package e2e
