// Package ociimage builds tiny OCI images from a static busybox binary and
// pushes them to a registry, so tests and the demo can run real containers
// without network access. It is not meant for production images.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options tune Build. The zero value builds "skiff.local/busybox:latest"
// with every applet the binary lists and Cmd ["/bin/sh"].
type Options struct {
	// Name is the full image reference recorded in index.json, which
	// containerd's import uses as the image name.
	Name string
	// Applets get a /bin/<applet> symlink to /bin/busybox. Nil means every
	// applet of "busybox --list" (or a built-in list if that fails).
	Applets []string
	// Cmd and Entrypoint go into the image config; Cmd defaults to /bin/sh.
	Cmd        []string
	Entrypoint []string
}

// DefaultName is the image name Build uses when Options.Name is empty.
const DefaultName = "skiff.local/busybox:latest"

// basicApplets is used when "busybox --list" cannot run.
var basicApplets = []string{
	"cat", "echo", "env", "false", "hostname", "httpd", "id", "kill", "ls",
	"mkdir", "ps", "rm", "sh", "sleep", "test", "touch", "true", "wget", "yes",
}

// epoch is the fixed timestamp of every file and of the config, so the
// same busybox binary always yields the same digests.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Build writes an OCI image layout as a tar archive (the format of
// "oci-archive:" references) to outPath: one gzip layer holding busybox at
// /bin/busybox, applet symlinks, /etc/passwd and /etc/group, and /tmp; an
// image config for the host's architecture; a manifest; and an index.json
// whose entry carries the image name in org.opencontainers.image.ref.name
// and io.containerd.image.name. The output is deterministic for a given
// binary and options.
func Build(busyboxPath, outPath string, opts Options) error {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Cmd == nil && opts.Entrypoint == nil {
		opts.Cmd = []string{"/bin/sh"}
	}
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return fmt.Errorf("build image: read busybox: %w", err)
	}
	applets := opts.Applets
	if applets == nil {
		applets = listApplets(busyboxPath)
	}

	layer, diffID, err := buildLayer(bin, applets)
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	platform := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	created := epoch
	config := ocispec.Image{
		Created:  &created,
		Platform: platform,
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Entrypoint: opts.Entrypoint,
			Cmd:        opts.Cmd,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptorOf(ocispec.MediaTypeImageConfig, configJSON),
		Layers:    []ocispec.Descriptor{descriptorOf(ocispec.MediaTypeImageLayerGzip, layer)},
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	mdesc := descriptorOf(ocispec.MediaTypeImageManifest, manifestJSON)
	mdesc.Platform = &platform
	mdesc.Annotations = map[string]string{
		ocispec.AnnotationRefName:  opts.Name,
		"io.containerd.image.name": opts.Name,
	}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{mdesc},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	files := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layoutJSON},
		{"index.json", indexJSON},
		{blobPath(manifest.Config.Digest), configJSON},
		{blobPath(manifest.Layers[0].Digest), layer},
		{blobPath(mdesc.Digest), manifestJSON},
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return fmt.Errorf("build image: %w", err)
		}
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, 0o644, f.data); err != nil {
			return fmt.Errorf("build image: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	if err := os.WriteFile(outPath, out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	return nil
}

// listApplets asks the binary for its applets, falling back to a basic set.
func listApplets(busyboxPath string) []string {
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return basicApplets
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			applets = append(applets, a)
		}
	}
	if len(applets) == 0 {
		return basicApplets
	}
	return applets
}

// buildLayer returns the gzip-compressed root filesystem layer and the
// digest of its uncompressed tar (the config's diff ID).
func buildLayer(bin []byte, applets []string) (layer []byte, diffID digest.Digest, err error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := []struct {
		name string
		mode int64
	}{
		{"bin/", 0o755}, {"dev/", 0o755}, {"etc/", 0o755}, {"proc/", 0o555},
		{"root/", 0o700}, {"sys/", 0o555}, {"tmp/", 0o1777}, {"var/", 0o755}, {"var/www/", 0o755},
	}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch}); err != nil {
			return nil, "", err
		}
	}
	if err := writeFile(tw, "bin/busybox", 0o755, bin); err != nil {
		return nil, "", err
	}
	sorted := slices.Clone(applets)
	slices.Sort(sorted)
	for _, a := range slices.Compact(sorted) {
		h := &tar.Header{Typeflag: tar.TypeSymlink, Name: path.Join("bin", a), Linkname: "busybox", Mode: 0o777, ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
	}
	etc := []struct{ name, data string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
	}
	for _, f := range etc {
		if err := writeFile(tw, f.name, 0o644, []byte(f.data)); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID = digest.FromBytes(raw.Bytes())

	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func descriptorOf(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

func blobPath(d digest.Digest) string {
	return path.Join("blobs", d.Algorithm().String(), d.Encoded())
}
