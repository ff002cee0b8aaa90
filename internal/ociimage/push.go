package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Push uploads the first image of the OCI archive at archivePath to the
// plain-HTTP registry at registryHostPort as repo:tag, with the registry
// v2 HTTP API: each blob is checked with HEAD and, when missing, uploaded
// in one monolithic PUT; then the manifest is put under the tag. It is for
// tests and demos against a local registry: no TLS, no authentication.
func Push(ctx context.Context, archivePath, registryHostPort, repo, tag string) error {
	return PushWith(ctx, archivePath, registryHostPort, repo, tag, PushOptions{})
}

// PushOptions are the optional settings of PushWith.
type PushOptions struct {
	// Username and Password, when set, go with every request as HTTP
	// basic authentication (a registry with htpasswd auth).
	Username, Password string
}

// PushWith is Push with options.
func PushWith(ctx context.Context, archivePath, registryHostPort, repo, tag string, opts PushOptions) error {
	files, err := readArchive(archivePath)
	if err != nil {
		return fmt.Errorf("push %s: %w", archivePath, err)
	}
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		return fmt.Errorf("push %s: index.json: %w", archivePath, err)
	}
	if len(index.Manifests) == 0 {
		return fmt.Errorf("push %s: index.json lists no image", archivePath)
	}
	mdesc := index.Manifests[0]
	if mdesc.MediaType != ocispec.MediaTypeImageManifest {
		return fmt.Errorf("push %s: first entry is %s; only single-platform image manifests are supported", archivePath, mdesc.MediaType)
	}
	manifestJSON, err := blob(files, mdesc.Digest)
	if err != nil {
		return fmt.Errorf("push %s: %w", archivePath, err)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(manifestJSON, &manifest); err != nil {
		return fmt.Errorf("push %s: manifest: %w", archivePath, err)
	}

	r := &registry{base: "http://" + registryHostPort + "/v2/" + repo, client: http.DefaultClient, opts: opts}
	for _, d := range append([]ocispec.Descriptor{manifest.Config}, manifest.Layers...) {
		data, err := blob(files, d.Digest)
		if err != nil {
			return fmt.Errorf("push %s: %w", archivePath, err)
		}
		if err := r.putBlob(ctx, d.Digest, data); err != nil {
			return fmt.Errorf("push %s/%s: blob %s: %w", registryHostPort, repo, d.Digest, err)
		}
	}
	if err := r.putManifest(ctx, tag, mdesc.MediaType, manifestJSON); err != nil {
		return fmt.Errorf("push %s/%s:%s: manifest: %w", registryHostPort, repo, tag, err)
	}
	return nil
}

// readArchive returns the regular files of a tar archive by name.
func readArchive(p string) (map[string][]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read archive: %s: %w", h.Name, err)
		}
		files[strings.TrimPrefix(h.Name, "./")] = data
	}
}

func blob(files map[string][]byte, d digest.Digest) ([]byte, error) {
	data, ok := files[blobPath(d)]
	if !ok {
		return nil, fmt.Errorf("archive has no blob %s", d)
	}
	if digest.FromBytes(data) != d {
		return nil, fmt.Errorf("blob %s is corrupt: its content does not match its digest", d)
	}
	return data, nil
}

// registry speaks the part of the distribution API that a push needs.
type registry struct {
	base   string // http://host:port/v2/<repo>
	client *http.Client
	opts   PushOptions
}

func (r *registry) putBlob(ctx context.Context, d digest.Digest, data []byte) error {
	resp, err := r.do(ctx, http.MethodHead, r.base+"/blobs/"+d.String(), "", nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		return nil // already there
	}

	resp, err = r.do(ctx, http.MethodPost, r.base+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: registry answered %s%s", resp.Status, authHint(resp))
	}
	loc, err := url.Parse(r.base)
	if err == nil {
		loc, err = loc.Parse(resp.Header.Get("Location"))
	}
	if err != nil {
		return fmt.Errorf("start upload: bad Location header %q: %w", resp.Header.Get("Location"), err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = r.do(ctx, http.MethodPut, loc.String(), "application/octet-stream", data)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload: registry answered %s", resp.Status)
	}
	return nil
}

func (r *registry) putManifest(ctx context.Context, tag, mediaType string, data []byte) error {
	resp, err := r.do(ctx, http.MethodPut, r.base+"/manifests/"+tag, mediaType, data)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("registry answered %s", resp.Status)
	}
	return nil
}

// authHint explains a 401 answer.
func authHint(resp *http.Response) string {
	if resp.StatusCode == http.StatusUnauthorized {
		return "; the registry wants credentials (PushOptions)"
	}
	return ""
}

// do sends one request and returns the response with its body drained
// and closed; the callers only need status and headers.
func (r *registry) do(ctx context.Context, method, u, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.opts.Username != "" {
		req.SetBasicAuth(r.opts.Username, r.opts.Password)
	}
	req.ContentLength = int64(len(body))
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}
