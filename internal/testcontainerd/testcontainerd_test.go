package testcontainerd_test

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/skiffhq/skiff/internal/testcontainerd"
)

func version(t *testing.T, address string) string {
	t.Helper()
	c, err := client.New(address, client.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Version(ctx)
	if err != nil {
		t.Fatalf("containerd at %s: %v", address, err)
	}
	return v.Version
}

func TestStartRestart(t *testing.T) {
	env := testcontainerd.Start(t)
	if version(t, env.Address) == "" {
		t.Error("empty version")
	}
	env.Restart()
	version(t, env.Address)
}

func TestBusyboxArchiveCached(t *testing.T) {
	a, b := testcontainerd.BusyboxArchive(t), testcontainerd.BusyboxArchive(t)
	if a == "" || a != b {
		t.Errorf("BusyboxArchive = %q then %q, want one cached path", a, b)
	}
}
