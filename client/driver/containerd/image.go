package containerd

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// archivePrefix marks an image that is imported from an OCI archive on
// the host instead of pulled.
const archivePrefix = "oci-archive:"

// Registry client timeouts: a registry that is down or stuck fails the
// start in bounded time instead of hanging it.
const (
	registryDialTimeout   = 10 * time.Second
	registryHeaderTimeout = 30 * time.Second
)

// ensureImage returns the task's image, unpacked with the configured
// snapshotter. A registry image already in containerd is reused without
// contacting the registry; an archive is imported on every start (cheap:
// its blobs are already in the content store after the first time).
// Concurrent calls for the same image share one pull, bounded by the
// context of the call that started it.
func (d *Driver) ensureImage(ctx context.Context, s *taskSettings) (client.Image, error) {
	key := s.image
	if !strings.HasPrefix(s.image, archivePrefix) {
		named, err := reference.ParseDockerRef(s.image)
		if err != nil {
			return nil, fmt.Errorf("image %q is not a valid reference (%v); use a name like registry.example.com/web:1.0 or oci-archive:/path/image.tar", s.image, err)
		}
		key = named.String()
	}
	v, err, _ := d.pulls.Do(key, func() (any, error) {
		if strings.HasPrefix(s.image, archivePrefix) {
			return d.importArchive(ctx, strings.TrimPrefix(s.image, archivePrefix))
		}
		return d.pull(ctx, key, s.auth)
	})
	if err != nil {
		return nil, err
	}
	img := v.(client.Image)
	if err := d.unpack(ctx, img); err != nil {
		return nil, err
	}
	return img, nil
}

// unpack unpacks img into the snapshotter unless that was done before.
func (d *Driver) unpack(ctx context.Context, img client.Image) error {
	ok, err := img.IsUnpacked(ctx, d.cfg.Snapshotter)
	if err == nil && ok {
		return nil
	}
	if err := img.Unpack(ctx, d.cfg.Snapshotter); err != nil {
		return fmt.Errorf("unpack image %s with snapshotter %s: %w", img.Name(), d.cfg.Snapshotter, unwrapGRPC(err))
	}
	return nil
}

// pull returns the image ref, pulling it if containerd does not have it.
func (d *Driver) pull(ctx context.Context, ref string, taskAuth *Credentials) (client.Image, error) {
	if img, err := d.client.GetImage(ctx, ref); err == nil {
		return img, nil
	} else if !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("look up image %s: %w", ref, unwrapGRPC(err))
	}
	named, _ := reference.ParseNormalizedNamed(ref) // valid: ref comes from ParseDockerRef
	host := reference.Domain(named)
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: d.registryHosts(host, taskAuth)})
	start := time.Now()
	img, err := d.client.Pull(ctx, ref,
		client.WithResolver(resolver),
		client.WithPullUnpack,
		client.WithPullSnapshotter(d.cfg.Snapshotter))
	if err != nil {
		return nil, pullError(ref, host, d.insecure(host), err)
	}
	d.logger.Info("pulled image", "image", ref, "duration", time.Since(start))
	return img, nil
}

// registryHosts configures how the resolver reaches a registry: plain
// HTTP for insecure registries, HTTPS with a fallback to HTTP for
// loopback hosts (as Docker does), credentials from the task or the node,
// and bounded timeouts.
func (d *Driver) registryHosts(refHost string, taskAuth *Credentials) docker.RegistryHosts {
	creds := func(h string) (string, string, error) {
		if taskAuth != nil {
			return taskAuth.Username, taskAuth.Password, nil
		}
		for _, name := range []string{h, refHost} {
			if c, ok := d.cfg.Auth[name]; ok {
				return c.Username, c.Password, nil
			}
		}
		return "", "", nil
	}
	return func(host string) ([]docker.RegistryHost, error) {
		tr := docker.DefaultHTTPTransport(nil)
		tr.DialContext = (&net.Dialer{Timeout: registryDialTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.ResponseHeaderTimeout = registryHeaderTimeout
		h := docker.RegistryHost{
			Host:         host,
			Scheme:       "https",
			Path:         "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
			Client:       &http.Client{Transport: tr},
		}
		if host == "docker.io" {
			h.Host = "registry-1.docker.io"
		}
		if d.insecure(host) {
			h.Scheme = "http"
		} else if local, _ := docker.MatchLocalhost(host); local {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback only, as Docker does
			h.Client = &http.Client{Transport: docker.NewHTTPFallback(tr)}
		}
		h.Authorizer = docker.NewDockerAuthorizer(docker.WithAuthClient(h.Client), docker.WithAuthCreds(creds))
		return []docker.RegistryHost{h}, nil
	}
}

// insecure reports whether host ("host" or "host:port") is listed in
// InsecureRegistries; an entry without a port matches any port.
func (d *Driver) insecure(host string) bool {
	name, _, err := net.SplitHostPort(host)
	if err != nil {
		name = host
	}
	for _, r := range d.cfg.InsecureRegistries {
		if r == host || r == name {
			return true
		}
	}
	return false
}

// pullError explains a failed pull in terms a job author can act on.
func pullError(ref, host string, insecure bool, err error) error {
	err = unwrapGRPC(err)
	var dnsErr *net.DNSError
	switch {
	case errdefs.IsNotFound(err):
		return fmt.Errorf("pull %s: not found in registry; check the image name and tag: %w", ref, err)
	case errdefs.IsUnauthorized(err), errdefs.IsPermissionDenied(err), strings.Contains(err.Error(), "access denied"),
		strings.Contains(err.Error(), "401 Unauthorized"):
		return fmt.Errorf("pull %s: the registry refused access; check the credentials (auth block, or the client's registry auth) and the image name: %w", ref, err)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("pull %s: registry %s serves plain HTTP; add it to the client's insecure registries: %w", ref, host, err)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("pull %s: registry host %s does not resolve; check the registry name: %w", ref, host, err)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		hint := "check that the registry is running and reachable from this node"
		if !insecure {
			hint += ", and add it to the insecure registries if it serves plain HTTP"
		}
		return fmt.Errorf("pull %s: registry %s is unreachable; %s: %w", ref, host, hint, err)
	default:
		return fmt.Errorf("pull %s: %w", ref, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// importArchive imports the OCI image layout tar at path and returns its
// image. The image keeps the name the archive gives it (the
// io.containerd.image.name or org.opencontainers.image.ref.name
// annotation); an unnamed image is named after the archive's path and
// digest.
func (d *Driver) importArchive(ctx context.Context, path string) (client.Image, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("image %s%s: the archive path must be absolute", archivePrefix, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import image %s%s: %w; check the path on this node", archivePrefix, path, err)
	}
	defer f.Close()
	// An archive already imported and unchanged since (same size and
	// modification time) is not read again: its image is still there.
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("import image %s%s: %w", archivePrefix, path, err)
	}
	stamp := archiveImport{size: st.Size(), mtime: st.ModTime()}
	d.archMu.Lock()
	prev, seen := d.archives[path]
	d.archMu.Unlock()
	if seen && prev.size == stamp.size && prev.mtime.Equal(stamp.mtime) {
		if img, err := d.client.GetImage(ctx, prev.image); err == nil {
			return img, nil
		}
	}
	img, err := d.importFile(ctx, f, path)
	if err != nil {
		return nil, err
	}
	stamp.image = img.Name()
	d.archMu.Lock()
	if d.archives == nil {
		d.archives = map[string]archiveImport{}
	}
	d.archives[path] = stamp
	d.archMu.Unlock()
	return img, nil
}

// archiveImport remembers which image an archive file became.
type archiveImport struct {
	size  int64
	mtime time.Time
	image string
}

func (d *Driver) importFile(ctx context.Context, f *os.File, path string) (client.Image, error) {
	sum := sha256.Sum256([]byte(path))
	prefix := "skiff.local/oci-archive/" + hex.EncodeToString(sum[:6])
	imgs, err := d.client.Import(ctx, f,
		client.WithDigestRef(archive.DigestTranslator(prefix)),
		client.WithSkipDigestRef(func(name string) bool { return name != "" }))
	if err != nil {
		return nil, fmt.Errorf("import image %s%s: %w; the file must be an OCI image layout tar (an oci-archive)", archivePrefix, path, unwrapGRPC(err))
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import image %s%s: the archive holds no image for this node's platform", archivePrefix, path)
	}
	if len(imgs) > 1 {
		d.logger.Warn("archive holds several images; using the first", "archive", path, "image", imgs[0].Name)
	}
	return client.NewImage(d.client, imgs[0]), nil
}

// PruneImages deletes the images of this driver's namespace that no
// container uses any more (containerd then collects their content and
// snapshots). The client calls it after garbage-collecting allocations.
// It returns how many images it deleted.
func (d *Driver) PruneImages(ctx context.Context) (int, error) {
	ctx = d.nsCtx(ctx)
	c := d.client
	containers, err := c.Containers(ctx)
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", unwrapGRPC(err))
	}
	used := map[string]bool{}
	for _, ctr := range containers {
		info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
		if err == nil {
			used[info.Image] = true
		}
	}
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list images: %w", unwrapGRPC(err))
	}
	n := 0
	for _, img := range imgs {
		if used[img.Name] {
			continue
		}
		if err := c.ImageService().Delete(ctx, img.Name); err != nil && !errdefs.IsNotFound(err) {
			return n, fmt.Errorf("delete image %s: %w", img.Name, unwrapGRPC(err))
		}
		n++
	}
	d.archMu.Lock()
	clear(d.archives)
	d.archMu.Unlock()
	return n, nil
}
