// Command mkimage builds the demo's busybox OCI image from Debian's
// busybox-static and optionally pushes it to a plain-HTTP registry:
//
//	go run ./scripts/mkimage -out busybox.tar -push 127.0.0.1:5000/skiff/busybox:latest
//
// It exists for "make demo" and tests on machines without a registry or
// Docker; it is not a general image builder.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/skiffhq/skiff/internal/ociimage"
)

func main() {
	busybox := flag.String("busybox", "/bin/busybox", "a static busybox binary (apt-get install busybox-static)")
	out := flag.String("out", "busybox.tar", "where to write the OCI archive")
	push := flag.String("push", "", "push to this plain-HTTP registry reference, e.g. 127.0.0.1:5000/skiff/busybox:latest")
	flag.Parse()
	if err := run(*busybox, *out, *push); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(busybox, out, push string) error {
	name := ociimage.DefaultName
	if push != "" {
		name = push
	}
	if err := ociimage.Build(busybox, out, ociimage.Options{Name: name}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "built %s (%s)\n", out, name)
	if push == "" {
		return nil
	}
	host, rest, ok := strings.Cut(push, "/")
	if !ok {
		return fmt.Errorf("-push %q: want host:port/repo:tag", push)
	}
	repo, tag, ok := strings.Cut(rest, ":")
	if !ok {
		tag = "latest"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ociimage.Push(ctx, out, host, repo, tag); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pushed %s\n", push)
	return nil
}
