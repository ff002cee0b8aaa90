package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// requireNetns skips the test when it cannot build network namespaces
// (not root, or ip/iptables missing), or fails it instead when
// SKIFF_REQUIRE_NETNS=1 says the environment must support them (CI).
func requireNetns(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not running as root"
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = tool + " is not installed"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("SKIFF_REQUIRE_NETNS") == "1" {
		t.Fatalf("network namespaces are required (SKIFF_REQUIRE_NETNS=1) but unavailable: %s", why)
	}
	t.Skipf("needs network namespaces: %s (set SKIFF_REQUIRE_NETNS=1 to fail instead)", why)
}

// netLab is n network namespaces, each joined by a veth pair to one
// bridge in the test's namespace. Server i runs in ns[i] at ips[i]; the
// test reaches every server over the bridge. Names and the /24 derive
// from the test process's pid, so concurrent runs do not clash.
type netLab struct {
	t         *testing.T
	bridge    string
	ns, veths []string // namespace and bridge-side veth of each server
	ips       []string
	forward   []string // root FORWARD rule added to let bridged traffic pass; nil if none
}

// newNetLab builds the namespaces and the bridge, and removes them (and
// any leftovers of the same names) when the test ends.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	pid := os.Getpid()
	subnet := fmt.Sprintf("10.213.%d", pid%250+1)
	l := &netLab{t: t, bridge: fmt.Sprintf("sk%db", pid)}
	for i := range n {
		l.ns = append(l.ns, fmt.Sprintf("sk%d-%d", pid, i+1))
		l.veths = append(l.veths, fmt.Sprintf("sk%dh%d", pid, i+1))
		l.ips = append(l.ips, fmt.Sprintf("%s.%d", subnet, 11+i))
	}
	l.teardown() // leftovers of an earlier run with the same pid
	t.Cleanup(l.teardown)

	l.must("ip", "link", "add", l.bridge, "type", "bridge")
	l.must("ip", "addr", "add", subnet+".1/24", "dev", l.bridge)
	l.must("ip", "link", "set", l.bridge, "up")
	for i := range n {
		inner := fmt.Sprintf("sk%dn%d", pid, i+1)
		l.must("ip", "netns", "add", l.ns[i])
		l.must("ip", "link", "add", l.veths[i], "type", "veth", "peer", "name", inner, "netns", l.ns[i])
		l.must("ip", "link", "set", l.veths[i], "master", l.bridge)
		l.must("ip", "link", "set", l.veths[i], "up")
		l.must("ip", "-n", l.ns[i], "addr", "add", l.ips[i]+"/24", "dev", inner)
		l.must("ip", "-n", l.ns[i], "link", "set", inner, "up")
		l.must("ip", "-n", l.ns[i], "link", "set", "lo", "up")
	}
	// With br_netfilter loaded, frames between the servers cross the
	// host's FORWARD chain; a host that drops there (Docker sets that
	// policy) would cut the cluster apart before the test does.
	if b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil && strings.TrimSpace(string(b)) == "1" {
		out, err := exec.Command("iptables", "-S", "FORWARD").CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) != "-P FORWARD ACCEPT" {
			rule := []string{"FORWARD", "-i", l.bridge, "-o", l.bridge, "-j", "ACCEPT"}
			l.must("iptables", append([]string{"-I"}, rule...)...)
			l.forward = rule
		}
	}
	return l
}

func (l *netLab) run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *netLab) must(name string, args ...string) {
	l.t.Helper()
	if err := l.run(name, args...); err != nil {
		l.t.Fatal(err)
	}
}

// teardown deletes what newNetLab made; missing pieces are fine.
// Deleting a namespace deletes its veth pair with it.
func (l *netLab) teardown() {
	if l.forward != nil {
		if err := l.run("iptables", append([]string{"-D"}, l.forward...)...); err != nil {
			l.t.Logf("cleanup: %v", err)
		}
		l.forward = nil
	}
	for i, ns := range l.ns {
		_ = l.run("ip", "netns", "delete", ns)
		_ = l.run("ip", "link", "delete", l.veths[i])
	}
	_ = l.run("ip", "link", "delete", l.bridge)
}

// cut drops, inside server i's namespace, every packet between it and the
// other servers, both ways (heal=false); heal=true removes those rules.
// The test's own traffic, from the bridge address, still flows.
func (l *netLab) cut(i int, heal bool) {
	l.t.Helper()
	op := "-A"
	if heal {
		op = "-D"
	}
	for j, peer := range l.ips {
		if j == i {
			continue
		}
		l.must("ip", "netns", "exec", l.ns[i], "iptables", op, "INPUT", "-s", peer, "-j", "DROP")
		l.must("ip", "netns", "exec", l.ns[i], "iptables", op, "OUTPUT", "-d", peer, "-j", "DROP")
	}
}

// putMeta registers job id with Meta["v"] = v through a, within timeout.
func putMeta(a *agentProc, id, v string, timeout time.Duration) (uint64, error) {
	j := job(id)
	j.Meta = map[string]string{"v": v}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var reply structs.JobRegisterResponse
	_, err := call(ctx, http.MethodPut, a.addr()+"/v1/jobs", map[string]any{"Job": j}, &reply)
	return reply.Index, err
}

// getMeta reads job id's Meta["v"] through a ("" when there is no such
// job). query "" is a default, linearizable read; "?stale" reads a's own
// state.
func getMeta(a *agentProc, id, query string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got structs.Job
	_, err := call(ctx, http.MethodGet, a.addr()+"/v1/job/"+id+query, nil, &got)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return "", nil
		}
		return "", err
	}
	return got.Meta["v"], nil
}

// leaderAddr is the leader a believes in (its RPC address), "" if none.
func leaderAddr(a *agentProc) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var got string
	if _, err := call(ctx, http.MethodGet, a.addr()+"/v1/status/leader", nil, &got); err != nil {
		return ""
	}
	return got
}

func rpcAddr(a *agentProc) string { return fmt.Sprintf("%s:%d", a.host(), a.rpc) }

// jobsView is a's own copy of every job, ID -> "JobModifyIndex/Meta[v]".
func jobsView(a *agentProc) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stubs []*structs.JobListStub
	if _, err := call(ctx, http.MethodGet, a.addr()+"/v1/jobs?stale&meta=true", nil, &stubs); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range stubs {
		out[s.ID] = fmt.Sprintf("%d/%s", s.JobModifyIndex, s.Meta["v"])
	}
	return out, nil
}

// seqOf orders the values the test writes to the watched key: "old"
// (before the partition) is -1, "new-N" is N, and no value at all -2.
func seqOf(v string) int {
	if v == "old" {
		return -1
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(v, "new-")); err == nil && strings.HasPrefix(v, "new-") {
		return n
	}
	return -2
}

// TestLeaderPartitionedIntoMinority cuts the leader of a 3-server cluster
// off from the two others (iptables inside its own network namespace),
// while clients keep writing to both sides and reading from the old
// leader. It proves that:
//
//  1. the two others elect a new leader;
//  2. the old leader acknowledges no write sent to it after the cut: it
//     cannot reach a quorum, so it must not claim a commit;
//  3. a default (linearizable) read on the old leader never returns a
//     stale value: once the majority has acknowledged a newer value of a
//     key, the read fails or returns that newer value (a ?stale read may
//     return the old one: it is only logged);
//  4. after the cut heals, the old leader rejoins as a follower and the
//     three servers converge to the same jobs at the same versions,
//     including every write the majority acknowledged.
func TestLeaderPartitionedIntoMinority(t *testing.T) {
	requireNetns(t)
	lab := newNetLab(t, 3)
	c := newCluster(t, 3, clusterOpts{ips: lab.ips, netns: lab.ns})
	c.leader()

	// The watched key holds "old" on every server before the cut.
	const key = "pkey"
	idx, err := putMeta(c.agents[0], key, "old", 10*time.Second)
	if err != nil {
		t.Fatalf("seed %s: %v", key, err)
	}
	for _, a := range c.agents {
		waitApplied(t, a, idx)
	}

	old := c.leader()
	oldIdx := slices.Index(c.agents, old)
	var majority []*agentProc
	for _, a := range c.agents {
		if a != old {
			majority = append(majority, a)
		}
	}
	lab.cut(oldIdx, false)
	cutAt := time.Now()
	t.Logf("partitioned %s (%s, the leader) from %s and %s", old.name, old.host(), majority[0].name, majority[1].name)

	const reqTimeout = 3 * time.Second
	type keyAck struct {
		seq int
		at  time.Time
	}
	type oldRead struct {
		call time.Time
		v    string
		err  error
	}
	var (
		mu               sync.Mutex
		keyAcks          []keyAck              // majority-acknowledged writes of key, in order
		keyUnknown       = map[int]bool{}      // writes of key not acknowledged: outcome unknown
		majAcked         = map[string]string{} // other majority-acknowledged jobs: ID -> v
		firstAck         time.Time             // the majority's first acknowledgement
		minTried         int
		minAcked         []string
		reads            []oldRead
		staleN, staleOld int
	)
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup

	// Minority writers: new jobs through the old leader. None may be
	// acknowledged.
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000 && !stopped(); i++ {
				id := fmt.Sprintf("min-%d-%d", w, i)
				_, err := putMeta(old, id, "minority", reqTimeout)
				mu.Lock()
				minTried++
				if err == nil {
					minAcked = append(minAcked, id)
				}
				mu.Unlock()
			}
		}()
	}

	// Majority writers, through the two other servers in turn. One writes
	// new values of key one after another (new-0, new-1, ...), so each
	// acknowledgement orders it after the ones before. The other starts a
	// write of a new job every 50 ms without waiting for the last, so the
	// first acknowledgement is timed closely even while earlier writes
	// hang on their way to the unreachable old leader.
	ackNow := func() time.Time { // with mu held
		now := time.Now()
		if firstAck.IsZero() {
			firstAck = now
		}
		return now
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10000 && !stopped(); i++ {
			_, err := putMeta(majority[i%2], key, fmt.Sprintf("new-%d", i), reqTimeout)
			mu.Lock()
			if err == nil {
				keyAcks = append(keyAcks, keyAck{seq: i, at: ackNow()})
			} else {
				keyUnknown[i] = true // it may take effect any time later
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // pace, not a timing assertion
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 1000 && !stopped(); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, v := fmt.Sprintf("maj-%d", i), fmt.Sprintf("new-%d", i)
				if _, err := putMeta(majority[i%2], id, v, reqTimeout); err == nil {
					mu.Lock()
					ackNow()
					majAcked[id] = v
					mu.Unlock()
				}
			}()
			select {
			case <-stop:
			case <-tick.C:
			}
		}
	}()

	// Readers of key on the old leader: default reads (checked below)
	// and, on one of them, stale reads (only counted).
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10000 && !stopped(); i++ {
				call0 := time.Now()
				v, err := getMeta(old, key, "", reqTimeout)
				mu.Lock()
				reads = append(reads, oldRead{call: call0, v: v, err: err})
				mu.Unlock()
				if r == 0 {
					if v, err := getMeta(old, key, "?stale", reqTimeout); err == nil {
						mu.Lock()
						staleN++
						if v == "old" {
							staleOld++
						}
						mu.Unlock()
					}
				}
			}
		}()
	}

	// Keep the cut until the majority has a leader and has acknowledged a
	// new value of key, and the old leader has been asked for key at
	// least twice since; at most 25 s.
	var newLeader *agentProc
	var electedAt time.Time
	for deadline := cutAt.Add(25 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if newLeader == nil {
			if l0, l1 := leaderAddr(majority[0]), leaderAddr(majority[1]); l0 != "" && l0 == l1 {
				for _, a := range majority {
					if rpcAddr(a) == l0 {
						newLeader, electedAt = a, time.Now()
					}
				}
			}
		}
		mu.Lock()
		readsAfter := 0
		if len(keyAcks) > 0 {
			for _, r := range reads {
				if r.call.After(keyAcks[0].at) {
					readsAfter++
				}
			}
		}
		tried := minTried
		mu.Unlock()
		if newLeader != nil && readsAfter >= 2 && tried >= 3 {
			break
		}
	}
	close(stop)
	wg.Wait()

	if newLeader == nil {
		t.Fatalf("%s and %s agreed on no leader among themselves within 25 s of the partition", majority[0].name, majority[1].name)
	}
	t.Logf("partition -> new leader %s among the majority: %s", newLeader.name, electedAt.Sub(cutAt).Round(time.Millisecond))
	if d := electedAt.Sub(cutAt); d > 15*time.Second {
		t.Errorf("the majority took %s to elect a leader (bound 15 s)", d)
	}
	if firstAck.IsZero() || len(keyAcks) == 0 {
		t.Fatalf("the majority acknowledged no write within 25 s of the partition")
	}
	t.Logf("partition -> first write acknowledged by the majority: %s (%d key writes and %d other jobs acknowledged)",
		firstAck.Sub(cutAt).Round(time.Millisecond), len(keyAcks), len(majAcked))
	t.Logf("writes sent to the old leader during the partition: %d attempted, %d acknowledged", minTried, len(minAcked))
	if len(minAcked) > 0 {
		t.Errorf("the old leader, cut off from a quorum, acknowledged %d writes: %v", len(minAcked), minAcked)
	}

	// A default read of key on the old leader that began after the
	// majority acknowledged value N must fail, or return N or later.
	readsOK, readsFailed, checked := 0, 0, 0
	for _, r := range reads {
		if r.err != nil {
			readsFailed++
		} else {
			readsOK++
		}
		want := -1
		for _, a := range keyAcks {
			if a.at.Before(r.call) {
				want = max(want, a.seq)
			}
		}
		if want < 0 {
			continue // no newer value acknowledged yet: "old" is right
		}
		checked++
		// (An older value is right only if its write was never
		// acknowledged: that one may take effect at any time.)
		if seq := seqOf(r.v); r.err == nil && seq < want && !keyUnknown[seq] {
			t.Errorf("stale linearizable read: GET %s on the old leader %s at +%s returned %q, but the majority had acknowledged new-%d before the read began",
				key, old.name, r.call.Sub(cutAt).Round(time.Millisecond), r.v, want)
		}
	}
	t.Logf("default reads on the old leader: %d answered, %d failed; %d began after the majority acknowledged a newer value",
		readsOK, readsFailed, checked)
	t.Logf("?stale reads on the old leader: %d answered, %d of them the pre-partition value (allowed)", staleN, staleOld)
	if checked == 0 {
		t.Fatal("no default read on the old leader began after the majority's first acknowledged write: the check exercised nothing")
	}

	// Heal. The old leader must follow the majority's leader (a leader
	// among the majority, not itself), and writes through it must work.
	lab.cut(oldIdx, true)
	healAt := time.Now()
	testutil.WaitFor(t, 30*time.Second, "every server, the old leader too, to agree on one leader among the majority", func() bool {
		l := leaderAddr(old)
		if l == "" || l == rpcAddr(old) {
			return false
		}
		for _, a := range majority {
			if leaderAddr(a) != l {
				return false
			}
		}
		return true
	})
	t.Logf("heal -> %s follows leader %s: %s", old.name, leaderAddr(old), time.Since(healAt).Round(time.Millisecond))
	var afterIdx uint64
	testutil.WaitFor(t, 20*time.Second, "a write through the old leader after healing", func() bool {
		afterIdx, err = putMeta(old, "after-heal", "healed", 5*time.Second)
		return err == nil
	})

	// Convergence: the same jobs at the same versions everywhere.
	views := make([]map[string]string, len(c.agents))
	testutil.WaitFor(t, 30*time.Second, "every server to hold the same jobs at the same versions", func() bool {
		for i, a := range c.agents {
			v, err := jobsView(a)
			if err != nil {
				return false
			}
			views[i] = v
		}
		return maps.Equal(views[0], views[1]) && maps.Equal(views[1], views[2])
	})
	t.Logf("heal -> all three servers converged: %s", time.Since(healAt).Round(time.Millisecond))
	for _, a := range c.agents {
		waitApplied(t, a, afterIdx)
	}

	final := views[0]
	if _, ok := final["after-heal"]; !ok {
		t.Errorf("the write made through the old leader after healing is missing")
	}
	for id, v := range majAcked {
		if got, ok := final[id]; !ok || !strings.HasSuffix(got, "/"+v) {
			t.Errorf("job %s, acknowledged by the majority with v=%s, is %q on every server after healing", id, v, got)
		}
	}
	// key ends with the last acknowledged value, or with one whose write
	// was not acknowledged (such a write may take effect at any time).
	last := keyAcks[len(keyAcks)-1].seq
	got := final[key]
	if seq := seqOf(got[strings.Index(got, "/")+1:]); seq != last && !keyUnknown[seq] {
		t.Errorf("%s is %q on every server after healing; the majority's last acknowledged value was new-%d", key, got, last)
	}
	var lateMinority []string
	for id := range final {
		if strings.HasPrefix(id, "min-") {
			lateMinority = append(lateMinority, id)
		}
	}
	sort.Strings(lateMinority)
	// A write the old leader held, unacknowledged, may still reach the new
	// leader once the cut heals: its outcome was unknown, so either is right.
	t.Logf("unacknowledged minority writes applied after healing: %d %v; %d jobs on every server", len(lateMinority), lateMinority, len(final))
}
