// Package testutil holds helpers shared by Skiff's tests. Production code
// must not import it.
package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{} // ports returned already; guarded by mu
)

// FreePort returns a loopback port that is free for TCP and UDP (gossip
// uses both) and that it has not returned before in this process. It picks below the kernel's ephemeral range (32768+) so no
// outgoing connection takes the port between this check and its use.
func FreePort(tb testing.TB) int {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if handed[port] {
			continue // free, but promised to an earlier caller not yet bound
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			handed[port] = true
			return port
		}
	}
	tb.Fatal("no free loopback port found")
	return 0
}
