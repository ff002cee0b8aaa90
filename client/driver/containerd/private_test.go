package containerd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/internal/testcontainerd"
)

// TestPrivateLongDir checks that a directory too long for a unix socket
// path still works: the socket moves under /run.
func TestPrivateLongDir(t *testing.T) {
	t.Parallel()
	testcontainerd.Require(t)
	dir := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 5))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := containerd.StartPrivate(ctx, dir, nil)
	if err != nil {
		t.Fatalf("StartPrivate: %v", err)
	}
	if !strings.HasPrefix(p.Address(), "/run/skiff-") || len(p.Address()) >= 100 {
		t.Errorf("Address() = %q, want a short path under /run/skiff-", p.Address())
	}
	d, err := containerd.New(containerd.Config{Address: p.Address(), Namespace: "skiff-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if fp := d.Fingerprint(ctx); !fp.Healthy {
		t.Errorf("Fingerprint: %s", fp.Description)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(p.Address())); !os.IsNotExist(err) {
		t.Errorf("socket directory left behind after Stop: %v", err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
