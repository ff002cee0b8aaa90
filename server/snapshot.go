package server

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/fsm"
)

// A cluster snapshot file, as "skiff operator snapshot save" writes it, is
// a gzipped tar of three files:
//
//	meta.json   raft's snapshot metadata (index, term, configuration)
//	state.bin   the FSM snapshot (see package fsm)
//	SHA256SUMS  sha256 of the two files above
//
// Restore checks the sums and decodes the whole state before it touches
// the cluster, so a damaged or truncated file changes nothing.
const (
	archiveMeta  = "meta.json"
	archiveState = "state.bin"
	archiveSums  = "SHA256SUMS"
)

// SaveSnapshot writes a snapshot of the cluster state to w and returns
// its metadata. Callers run it on the leader.
func (s *Server) SaveSnapshot(w io.Writer) (*raft.SnapshotMeta, error) {
	meta, rc, err := s.takeSnapshot()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot metadata: %w", err)
	}
	now := time.Now()
	sums := &bytes.Buffer{}
	mh := sha256.Sum256(metaJSON)
	if err := writeTarFile(tw, archiveMeta, now, int64(len(metaJSON)), bytes.NewReader(metaJSON)); err != nil {
		return nil, err
	}
	fmt.Fprintf(sums, "%s  %s\n", hex.EncodeToString(mh[:]), archiveMeta)
	h := sha256.New()
	if err := writeTarFile(tw, archiveState, now, meta.Size, io.TeeReader(rc, h)); err != nil {
		return nil, err
	}
	fmt.Fprintf(sums, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), archiveState)
	if err := writeTarFile(tw, archiveSums, now, int64(sums.Len()), sums); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write snapshot: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("write snapshot: %w", err)
	}
	return meta, nil
}

// takeSnapshot makes raft snapshot now, or opens the newest snapshot if
// nothing was written since it.
func (s *Server) takeSnapshot() (*raft.SnapshotMeta, io.ReadCloser, error) {
	future := s.raft.Snapshot()
	err := future.Error()
	if err == nil {
		return future.Open()
	}
	if !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, nil, fmt.Errorf("take snapshot: %w", err)
	}
	list, err := s.snapshots.List()
	if err != nil || len(list) == 0 {
		return nil, nil, fmt.Errorf("take snapshot: no snapshot available (%v)", err)
	}
	return s.snapshots.Open(list[0].ID)
}

func writeTarFile(tw *tar.Writer, name string, mod time.Time, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: mod}); err != nil {
		return fmt.Errorf("write snapshot %s: %w", name, err)
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("write snapshot %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("write snapshot %s: wrote %d bytes, expected %d", name, n, size)
	}
	return nil
}

// maxSnapshotStateBytes bounds what a snapshot file may unpack to, so that
// a small upload cannot expand until the leader runs out of memory.
const maxSnapshotStateBytes = 4 << 30

// ErrBadSnapshot marks snapshot files that cannot be restored.
var ErrBadSnapshot = errors.New("snapshot file cannot be restored")

// readArchive reads and checks a snapshot file completely.
func readArchive(r io.Reader) (*raft.SnapshotMeta, []byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s; nothing was changed. Use a file written by \"skiff operator snapshot save\" and check that it was copied whole", ErrBadSnapshot, fmt.Sprintf(format, args...))
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, bad("not a gzip file (%v)", err)
	}
	files := map[string][]byte{}
	var total int64
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, bad("the archive is damaged or truncated (%v)", err)
		}
		if _, known := map[string]bool{archiveMeta: true, archiveState: true, archiveSums: true}[hdr.Name]; !known {
			return nil, nil, bad("it holds an unexpected file %q", hdr.Name)
		}
		total += hdr.Size
		if hdr.Size < 0 || total > maxSnapshotStateBytes {
			return nil, nil, bad("it unpacks to more than %d bytes", maxSnapshotStateBytes)
		}
		b, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
		if err != nil || int64(len(b)) != hdr.Size {
			return nil, nil, bad("the archive is damaged or truncated (%v)", err)
		}
		files[hdr.Name] = b
	}
	for _, name := range []string{archiveMeta, archiveState, archiveSums} {
		if _, ok := files[name]; !ok {
			return nil, nil, bad("it has no %s (truncated?)", name)
		}
	}
	summed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(files[archiveSums])), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			return nil, nil, bad("%s is malformed", archiveSums)
		}
		content, ok := files[name]
		if !ok {
			return nil, nil, bad("%s names %s, which is missing", archiveSums, name)
		}
		h := sha256.Sum256(content)
		if hex.EncodeToString(h[:]) != sum {
			return nil, nil, bad("%s does not match its checksum", name)
		}
		summed[name] = true
	}
	if !summed[archiveMeta] || !summed[archiveState] {
		return nil, nil, bad("%s does not cover both %s and %s", archiveSums, archiveMeta, archiveState)
	}
	var meta raft.SnapshotMeta
	if err := json.Unmarshal(files[archiveMeta], &meta); err != nil {
		return nil, nil, bad("%s does not decode (%v)", archiveMeta, err)
	}
	meta.Size = int64(len(files[archiveState]))
	if _, err := fsm.Read(bytes.NewReader(files[archiveState])); err != nil {
		return nil, nil, bad("the state does not decode (%v)", err)
	}
	return &meta, files[archiveState], nil
}

// RestoreSnapshot replaces the cluster state with a snapshot file. It is
// run on the leader; raft sends the state to the followers.
func (s *Server) RestoreSnapshot(r io.Reader) error {
	meta, st, err := readArchive(r)
	if err != nil {
		return err
	}
	if err := s.raft.Restore(meta, bytes.NewReader(st), 0); err != nil {
		return fmt.Errorf("restore snapshot into raft: %w", err)
	}
	// Make sure every server applies entries after the restored state.
	if _, err := s.raftApply(noopType, struct{}{}); err != nil {
		return fmt.Errorf("commit after restore: %w", err)
	}
	return nil
}
