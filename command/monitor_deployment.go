package command

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// deploymentAppear bounds how long the monitor waits, after the
// evaluation completed, for the deployment of the registered version to
// be readable (it is committed with the evaluation's plan).
var deploymentAppear = 2 * time.Second

// rollsOut reports whether registering job may start a deployment: a
// service job with an update block (at job or group level).
func rollsOut(job *structs.Job) bool {
	if job.Type != "" && job.Type != structs.JobTypeService {
		return false
	}
	if job.Update != nil && job.Update.MaxParallel > 0 {
		return true // groups without their own update block inherit it
	}
	return slices.ContainsFunc(job.TaskGroups, (*structs.TaskGroup).Rolls)
}

// findDeployment returns the deployment of the job version registered
// with index jobModifyIndex, or nil when that version has none (no update
// block, or nothing to roll).
func (mon *monitor) findDeployment(jobID string, jobModifyIndex uint64) (*structs.Deployment, error) {
	deadline := time.Now().Add(deploymentAppear)
	for {
		d, _, err := mon.client.Jobs().LatestDeployment(mon.ctx, jobID, nil)
		if err != nil {
			return nil, err
		}
		if d != nil && d.JobModifyIndex == jobModifyIndex {
			return d, nil
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		select {
		case <-mon.ctx.Done():
			return nil, mon.ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// waitDeployment follows a deployment until it ends, showing each group's
// progress: redrawn in place on a terminal, one line per change when the
// output is piped. A successful deployment exits 0; a failed one
// (whether or not it rolled back) exits 2; a cancelled one 1.
func (mon *monitor) waitDeployment(d *structs.Deployment) int {
	fmt.Fprintf(mon.stdout, "==> Monitoring deployment %q\n", shortID(d.ID, mon.verbose))
	tty := mon.terminal(mon.stdout)
	drawn, last := 0, ""
	var index uint64
	for {
		view := deploymentView(d)
		if view != last {
			if tty {
				if drawn > 0 {
					fmt.Fprintf(mon.stdout, "\033[%dA\033[J", drawn) // back to the top of the last view
				}
				fmt.Fprint(mon.stdout, view)
				drawn = strings.Count(view, "\n")
			} else {
				fmt.Fprint(mon.stdout, deploymentLine(d))
			}
			last = view
		}
		if !d.Active() {
			break
		}
		// A deployment may stand still for long (canaries waiting for a
		// promotion): the request may outlast its wait by the server's
		// jitter (up to a sixteenth), so its context gets room beyond it.
		const wait = 5 * time.Minute
		ctx, cancel := context.WithTimeout(mon.ctx, wait+wait/16+30*time.Second)
		next, qm, err := mon.client.Deployments().Info(ctx, d.ID, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
		cancel()
		if err != nil {
			return mon.fail(err, "following deployment %q", shortID(d.ID, mon.verbose))
		}
		if !pauseIfNotBlocked(mon.ctx, qm, index) {
			return exitError
		}
		index, d = qm.LastIndex, next
	}
	switch d.Status {
	case structs.DeploymentStatusSuccessful:
		fmt.Fprintf(mon.stdout, "==> Deployment %q successful\n", shortID(d.ID, mon.verbose))
		return exitOK
	case structs.DeploymentStatusFailed:
		fmt.Fprintf(mon.stdout, "==> Deployment %q failed: %s\n", shortID(d.ID, mon.verbose), d.StatusDescription)
		return exitPlacementFailure
	default:
		fmt.Fprintf(mon.stdout, "==> Deployment %q %s: %s\n", shortID(d.ID, mon.verbose), d.Status, d.StatusDescription)
		return exitError
	}
}

// deploymentView is the redrawn view: status line and group table.
func deploymentView(d *structs.Deployment) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "    %s: %s\n", d.Status, d.StatusDescription)
	printDeploymentGroups(&b, d)
	return b.String()
}

// deploymentLine is one plain line of progress, for piped output.
func deploymentLine(d *structs.Deployment) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(d.TaskGroups)) {
		g := d.TaskGroups[name]
		parts = append(parts, fmt.Sprintf("%s %d/%d healthy, %d placed, %d unhealthy", name, g.HealthyAllocs, g.DesiredTotal, g.PlacedAllocs, g.UnhealthyAllocs))
	}
	return fmt.Sprintf("    %s %s: %s\n", time.Now().Format("15:04:05"), d.Status, strings.Join(parts, "; "))
}
