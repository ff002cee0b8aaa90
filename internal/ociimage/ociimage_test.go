package ociimage_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiffhq/skiff/internal/ociimage"
	"github.com/skiffhq/skiff/internal/testcontainerd"
)

// fakeBusybox is a stand-in binary: Build only copies it.
func fakeBusybox(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(p, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// readTar returns the entries of a tar file by name.
func readTar(t *testing.T, r io.Reader) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

// readFiles returns the regular files of a tar file by name.
func readFiles(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = b
		}
	}
}

func blob(t *testing.T, files map[string][]byte, d ocispec.Descriptor) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+d.Digest.Encoded()]
	if !ok {
		t.Fatalf("blob %s missing", d.Digest)
	}
	if digest.FromBytes(b) != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content does not match its descriptor", d.Digest)
	}
	return b
}

func TestBuild(t *testing.T) {
	bin := fakeBusybox(t)
	out := filepath.Join(t.TempDir(), "image.tar")
	opts := ociimage.Options{Name: "example.test/tiny:1", Applets: []string{"sh", "echo", "sh"}}
	if err := ociimage.Build(bin, out, opts); err != nil {
		t.Fatalf("Build: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	files := readFiles(t, bytes.NewReader(raw))
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", files["oci-layout"])
	}

	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(index.Manifests))
	}
	md := index.Manifests[0]
	if got := md.Annotations[ocispec.AnnotationRefName]; got != opts.Name {
		t.Errorf("ref.name annotation %q, want %q", got, opts.Name)
	}
	if md.Platform == nil || md.Platform.OS != "linux" {
		t.Errorf("manifest platform %+v, want linux", md.Platform)
	}

	var manifest ocispec.Manifest
	if err := json.Unmarshal(blob(t, files, md), &manifest); err != nil {
		t.Fatal(err)
	}
	var config ocispec.Image
	if err := json.Unmarshal(blob(t, files, manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if len(config.Config.Cmd) != 1 || config.Config.Cmd[0] != "/bin/sh" || len(config.Config.Env) == 0 {
		t.Errorf("image config %+v, want Cmd [/bin/sh] and a PATH", config.Config)
	}
	if len(manifest.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 {
		t.Fatalf("want one layer, got %d layers and %d diff IDs", len(manifest.Layers), len(config.RootFS.DiffIDs))
	}

	zr, err := gzip.NewReader(bytes.NewReader(blob(t, files, manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(layer) != config.RootFS.DiffIDs[0] {
		t.Error("diff ID does not match the uncompressed layer")
	}
	entries := readTar(t, bytes.NewReader(layer))
	if h := entries["bin/busybox"]; h == nil || h.Mode&0o111 == 0 {
		t.Errorf("bin/busybox missing or not executable: %+v", h)
	}
	for _, a := range []string{"bin/sh", "bin/echo"} {
		if h := entries[a]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("%s: %+v, want a symlink to busybox", a, h)
		}
	}
	if h := entries["tmp/"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("tmp/: %+v, want mode 1777", h)
	}

	// Same input, same bytes: digests are stable across builds.
	again := filepath.Join(t.TempDir(), "again.tar")
	if err := ociimage.Build(bin, again, opts); err != nil {
		t.Fatal(err)
	}
	if raw2, _ := os.ReadFile(again); !bytes.Equal(raw, raw2) {
		t.Error("two builds of the same input differ")
	}
}

func TestBuildMissingBinary(t *testing.T) {
	err := ociimage.Build(filepath.Join(t.TempDir(), "nope"), filepath.Join(t.TempDir(), "x.tar"), ociimage.Options{})
	if err == nil {
		t.Fatal("Build with a missing binary succeeded")
	}
}

func TestPush(t *testing.T) {
	registry := testcontainerd.StartRegistry(t)
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := ociimage.Build(fakeBusybox(t), archive, ociimage.Options{Applets: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 2 { // the second push finds every blob present
		if err := ociimage.Push(ctx, archive, registry, "skiff/tiny", "v1"); err != nil {
			t.Fatalf("Push: %v", err)
		}
	}

	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := readFiles(t, f)
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	want := blob(t, files, index.Manifests[0])

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+registry+"/v2/skiff/tiny/manifests/v1", nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		t.Errorf("GET manifest: %s %q, want the archive's manifest", resp.Status, got)
	}

	if err := ociimage.Push(ctx, archive, "127.0.0.1:1", "skiff/tiny", "v1"); err == nil {
		t.Error("push to a closed port succeeded")
	}
}
